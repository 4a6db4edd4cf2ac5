package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"log/slog"

	"github.com/kix-project/kix/internal/cache"
	"github.com/kix-project/kix/internal/nix"
)

// CacheOptions are the flags of `kix cache`.
type CacheOptions struct {
	IO              IOStreams
	Listen          string
	Store           bool
	Dir             string
	SecretKeyFile   string
	UploadToken     string
	UploadTokenFile string
	Compression     string
	Priority        int

	// ready, if set, receives the listening address (for tests).
	ready func(addr string)
}

// NewCmdCache builds `kix cache` and `kix cache keygen`.
func NewCmdCache(streams IOStreams) *cobra.Command {
	opts := &CacheOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Serve a Nix binary cache (narinfos, NARs, signed; uploads with a token)",
		Long: `Serve the Nix HTTP binary cache protocol, which Nix and kix csi read as a
substituter and "nix copy --to http://..." writes to:

  --store      the local Nix store, read-only: narinfos made and signed as they
               are asked for, NARs serialised and compressed on the fly
  --dir DIR    a cache folder as "nix copy --to file://DIR" writes it; takes
               uploads from clients with --upload-token (bearer token, or the
               password of basic authentication, e.g. from a netrc file). Each
               upload is verified (NAR hash and size, references present)
               before its narinfo is written, last.

--secret-key signs narinfos with a key in Nix's format (kix cache keygen, or
nix-store --generate-binary-cache-key).`,
		Example: `  # Serve the local store, signed
  kix cache keygen cache.example.org-1
  kix cache --store --secret-key cache.example.org-1.sec --listen :8080

  # A folder CI pushes to
  kix cache --dir /srv/nix-cache --secret-key key.sec --upload-token-file token
  nix copy --option netrc-file ./netrc --to http://cache:8080 ./result`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cacheRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.Listen, "listen", ":8080", "address to serve on")
	fs.BoolVar(&opts.Store, "store", false, "serve the local Nix store (read-only)")
	fs.StringVar(&opts.Dir, "dir", "", "serve this binary cache folder (and take uploads into it)")
	fs.StringVar(&opts.SecretKeyFile, "secret-key", "", "sign narinfos with this secret key file (Nix's name:base64 format)")
	fs.StringVar(&opts.UploadToken, "upload-token", "", "allow uploads from clients presenting this token (--dir only)")
	fs.StringVar(&opts.UploadTokenFile, "upload-token-file", "", "read the upload token from this file")
	fs.StringVar(&opts.Compression, "compression", string(cache.Zstd), "NAR compression when serving a store: zstd, xz or none")
	fs.IntVar(&opts.Priority, "priority", 40, "priority announced in nix-cache-info (lower is preferred)")
	cmd.AddCommand(newCmdCacheKeygen(streams))
	return cmd
}

func (o *CacheOptions) options() (cache.Options, error) {
	if o.Store == (o.Dir != "") {
		return cache.Options{}, usageErrorf("give one of --store and --dir")
	}
	comp, err := cache.ParseCompression(o.Compression)
	if err != nil {
		return cache.Options{}, usageErrorf("--compression: %v", err)
	}
	if o.Dir != "" && comp != cache.Zstd {
		return cache.Options{}, usageErrorf("--compression applies to --store: a folder's NARs are served as they were written")
	}
	if o.Priority < 1 {
		return cache.Options{}, usageErrorf("--priority must be at least 1 (lower is preferred; cache.nixos.org announces 40)")
	}
	copts := cache.Options{Dir: o.Dir, Compression: comp, Priority: o.Priority, UploadToken: o.UploadToken,
		ErrorLog: func(msg string, err error) { slog.Error(msg, "err", err) }}
	if o.Store {
		copts.Store = nix.NewLocalStore()
	}
	if o.UploadTokenFile != "" {
		data, err := os.ReadFile(o.UploadTokenFile)
		if err != nil {
			return cache.Options{}, fmt.Errorf("--upload-token-file: %w", err)
		}
		if copts.UploadToken = strings.TrimSpace(string(data)); copts.UploadToken == "" {
			return cache.Options{}, fmt.Errorf("--upload-token-file %s is empty: uploads would be refused to everyone", o.UploadTokenFile)
		}
	}
	if copts.UploadToken != "" && o.Store {
		return cache.Options{}, usageErrorf("--upload-token needs --dir: a store is served read-only")
	}
	if o.SecretKeyFile != "" {
		if copts.SigningKey, err = nix.ReadSigningKey(o.SecretKeyFile); err != nil {
			return cache.Options{}, err
		}
	}
	return copts, nil
}

func cacheRun(ctx context.Context, opts *CacheOptions) error {
	copts, err := opts.options()
	if err != nil {
		return err
	}
	h, err := cache.New(copts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return err
	}
	serverGC()
	what := "the local store"
	if opts.Dir != "" {
		what = opts.Dir
	}
	fmt.Fprintf(opts.IO.ErrOut, "kix cache serving %s on %s\n", what, ln.Addr())
	if copts.SigningKey != nil {
		fmt.Fprintf(opts.IO.ErrOut, "narinfos signed by %s\n", copts.SigningKey.Public())
	}
	if opts.ready != nil {
		opts.ready(ln.Addr().String())
	}
	return serveUntilDone(ctx, func() error { return h.Serve(ln) }, h.Shutdown)
}

// CacheKeygenOptions are the flags of `kix cache keygen`.
type CacheKeygenOptions struct {
	IO     IOStreams
	Name   string
	OutDir string
}

func newCmdCacheKeygen(streams IOStreams) *cobra.Command {
	opts := &CacheKeygenOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "keygen NAME",
		Short: "Make a binary cache signing key pair: NAME.sec and NAME.pub",
		Long: `Make an ed25519 key pair in Nix's format (as nix-store
--generate-binary-cache-key does): NAME.sec holds the secret key for
--secret-key, NAME.pub the public key for trusted-public-keys. The public key
is also printed. By convention NAME is the cache's host name and a number:
cache.example.org-1.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			opts.Name = args[0]
			return cacheKeygenRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.OutDir, "out-dir", ".", "folder to write the key files in")
	return cmd
}

func cacheKeygenRun(opts *CacheKeygenOptions) error {
	secret, public, err := nix.GenerateSigningKey(opts.Name)
	if err != nil {
		return usageError{err}
	}
	secFile := filepath.Join(opts.OutDir, opts.Name+".sec")
	pubFile := filepath.Join(opts.OutDir, opts.Name+".pub")
	// Neither file is overwritten: someone may already trust the key.
	for _, f := range []string{secFile, pubFile} {
		if _, err := os.Lstat(f); err == nil {
			return fmt.Errorf("%s exists: keygen does not replace a key", f)
		}
	}
	if err := writeNew(secFile, secret, 0o600); err != nil {
		return fmt.Errorf("writing secret key: %w", err)
	}
	if err := writeNew(pubFile, public, 0o644); err != nil {
		os.Remove(secFile)
		return fmt.Errorf("writing public key: %w", err)
	}
	fmt.Fprintln(opts.IO.Out, public)
	fmt.Fprintf(opts.IO.ErrOut, "wrote %s and %s\n", secFile, pubFile)
	return nil
}

// writeNew writes a file that must not exist yet (O_EXCL).
func writeNew(name, data string, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
