package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/internal/registry"
)

// RegistryOptions are the flags of `kix registry`.
type RegistryOptions struct {
	IO IOStreams
	storeOptions
	Listen      string
	PackageSet  string
	BasicAuth   []string
	Tokens      []string
	TLSCertFile string
	TLSKeyFile  string

	// ready, if set, receives the listening address (for tests).
	ready func(addr string)
}

// NewCmdRegistry builds `kix registry`.
func NewCmdRegistry(streams IOStreams) *cobra.Command {
	opts := &RegistryOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Serve images straight from a Nix store over the OCI distribution API (read-only)",
		Long: `Serve the images of store paths to any OCI client (containerd, docker, skopeo, crane):

  REGISTRY/<hash>-<name>:<any tag>   the image of /nix/store/<hash>-<name>
  REGISTRY/<hash>:<any tag>          the same, by hash alone
  REGISTRY/pkgs/<a>/<b>:<any tag>    packages a and b of --package-set

A package's image holds its runtime closure under /nix/store, with PATH set to
its bin/ and, if bin/ holds one program, that program as the entrypoint. Image
specs written by kix's Nix library and docker/OCI archives are served as the
images they describe. Images are built on first pull and cached (--cache-dir).

Manifests name images as nix.internal/<hash>-<name>; map nix.internal to this
registry with a containerd mirror (see the README).`,
		Example: `  # Serve the local store
  kix registry --listen :5000

  # Serve a binary cache, with no Nix on this machine
  kix registry --substituter https://cache.example.org \
    --trusted-public-key cache.example.org-1:AbCd...=`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return registryRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.Listen, "listen", ":5000", "address to serve on")
	opts.addStoreFlags(fs)
	opts.addImageFlags(fs)
	fs.StringVar(&opts.PackageSet, "package-set", "", "Nix file or flake whose attributes pkgs/ names build")
	fs.StringArrayVar(&opts.BasicAuth, "auth-basic", nil, "require HTTP basic authentication as USER:PASSWORD (repeatable)")
	fs.StringArrayVar(&opts.Tokens, "auth-token", nil, "accept this bearer token (repeatable)")
	fs.StringVar(&opts.TLSCertFile, "tls-cert-file", "", "serve HTTPS with this certificate")
	fs.StringVar(&opts.TLSKeyFile, "tls-private-key-file", "", "private key of --tls-cert-file")
	return cmd
}

func registryRun(ctx context.Context, opts *RegistryOptions) error {
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return usageErrorf("--tls-cert-file and --tls-private-key-file go together")
	}
	store, err := opts.store()
	if err != nil {
		return err
	}
	b, err := opts.builder(store)
	if err != nil {
		return err
	}
	ropts := registry.Options{
		Builder: b,
		ErrorLog: func(msg string, err error) {
			slog.Error(msg, "err", err)
		},
	}
	if opts.PackageSet != "" {
		set := &nix.PackageSet{Ref: opts.PackageSet}
		if _, err := os.Stat(opts.PackageSet); err != nil && !set.IsFlake() {
			return usageErrorf("--package-set: %v", err)
		}
		ropts.Packages = set
	}
	if auth, err := opts.auth(); err != nil {
		return err
	} else if auth != nil {
		ropts.Auth = auth
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return err
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(registry.Collectors(b)...)
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := &http.Server{Handler: withOps(registry.New(ropts), metrics), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(opts.IO.ErrOut, "kix registry serving %s on %s\n", store, ln.Addr())
	if opts.ready != nil {
		opts.ready(ln.Addr().String())
	}
	return serveUntilDone(ctx, func() error {
		if opts.TLSCertFile != "" {
			return srv.ServeTLS(ln, opts.TLSCertFile, opts.TLSKeyFile)
		}
		return srv.Serve(ln)
	}, srv.Shutdown)
}

func (opts *RegistryOptions) auth() (registry.Authenticator, error) {
	if len(opts.BasicAuth) == 0 && len(opts.Tokens) == 0 {
		return nil, nil
	}
	a := &registry.StaticAuth{Basic: map[string]string{}, Tokens: opts.Tokens}
	for _, s := range opts.BasicAuth {
		user, pass, err := registry.ParseBasicAuth(s)
		if err != nil {
			return nil, usageErrorf("--auth-basic: %v", err)
		}
		a.Basic[user] = pass
	}
	return a, nil
}
