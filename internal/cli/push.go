package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/spf13/cobra"

	"github.com/kix-project/kix/internal/image"
	"github.com/kix-project/kix/internal/nix"
)

// PushOptions are the flags of `kix push`.
type PushOptions struct {
	IO IOStreams
	storeOptions
	Insecure bool
	Docker   bool
	Output   string
}

// PushResult is what `kix push -o json` prints.
type PushResult struct {
	StorePath string `json:"storePath"`
	Reference string `json:"reference"` // REGISTRY/REPO@sha256:...
	Digest    string `json:"digest"`
	Pushed    bool   `json:"pushed"` // false if the tag already pointed at the digest
}

// NewCmdPush builds `kix push`.
func NewCmdPush(streams IOStreams) *cobra.Command {
	opts := &PushOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "push STORE_PATH REGISTRY/REPOSITORY[:TAG]",
		Short: "Push the image of a store path (package, image spec or image archive) to an OCI registry",
		Long: `Build the image of a store path as kix registry serves it and push it to any
OCI registry. The tag defaults to the store path's hash, so the same path
always lands on the same tag. Blobs the registry has are not uploaded again,
and if the tag already points at the image's digest nothing is pushed.

Credentials come from the Docker config (~/.docker/config.json), as for docker
and crane.`,
		Example: `  kix push ./result registry.example.org/hello
  kix push /nix/store/...-hello-image-spec.json registry.example.org/hello:v1`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return pushRun(cmd.Context(), opts, args[0], args[1])
		},
	}
	fs := cmd.Flags()
	opts.addStoreFlags(fs)
	opts.addImageFlags(fs)
	fs.BoolVar(&opts.Insecure, "insecure", false, "allow plain HTTP and unverified TLS to the registry")
	fs.BoolVar(&opts.Docker, "docker", false, "push Docker schema 2 manifests instead of OCI")
	fs.StringVarP(&opts.Output, "output", "o", "", "output format: json or yaml")
	return cmd
}

func pushRun(ctx context.Context, opts *PushOptions, source, dest string) error {
	format, err := parseOutputFormat(opts.Output)
	if err != nil {
		return err
	}
	if opts.Docker && opts.Compression == string(image.Zstd) {
		return usageErrorf("--docker with --compression zstd: Docker schema 2 manifests have no zstd layers (push OCI, or use gzip)")
	}
	storePath, err := resolveStorePath(source)
	if err != nil {
		return err
	}
	ref, err := pushReference(dest, storePath, opts.Insecure)
	if err != nil {
		return usageError{err}
	}

	store, err := opts.store()
	if err != nil {
		return err
	}
	b, err := opts.builder(store)
	if err != nil {
		return err
	}
	a, err := b.Build(ctx, storePath)
	if err != nil {
		return err
	}
	res, err := push(ctx, b.Cache, a, ref, pushTarget{docker: opts.Docker, insecure: opts.Insecure, log: opts.IO.ErrOut})
	if err != nil {
		return fmt.Errorf("pushing %s to %s: %w", storePath, ref, err)
	}
	if format != outputText {
		return writeStructured(opts.IO.Out, format, res)
	}
	if !res.Pushed {
		fmt.Fprintf(opts.IO.ErrOut, "%s already points at %s\n", ref, res.Digest)
	}
	_, err = fmt.Fprintln(opts.IO.Out, res.Reference)
	return err
}

// pushReference parses the destination, giving it the store hash as tag
// when it has neither tag nor digest.
func pushReference(dest, storePath string, insecure bool) (name.Reference, error) {
	var nopts []name.Option
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	if !strings.Contains(dest, "/") {
		return nil, fmt.Errorf("destination %s names no repository: give REGISTRY/REPOSITORY[:TAG]", dest)
	}
	last := dest[strings.LastIndex(dest, "/")+1:]
	if !strings.ContainsAny(last, ":@") {
		dest += ":" + nix.HashPart(storePath)
	}
	ref, err := name.ParseReference(dest, nopts...)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", dest, err)
	}
	return ref, nil
}

// pushTarget says how to push.
type pushTarget struct {
	docker   bool // Docker schema 2 manifests instead of OCI
	insecure bool // plain HTTP and unverified TLS allowed
	log      io.Writer
}

func push(ctx context.Context, cache *image.BlobCache, a *image.Artifact, ref name.Reference, to pushTarget) (*PushResult, error) {
	m := a.Manifest(to.docker)
	res := &PushResult{
		StorePath: a.StorePath,
		Reference: ref.Context().Digest(m.Digest.String()).String(),
		Digest:    m.Digest.String(),
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	if to.insecure {
		ropts = append(ropts, remote.WithTransport(insecureTransport()))
	}
	desc, err := remote.Head(ref, ropts...)
	var terr *transport.Error
	switch {
	case err == nil && desc.Digest == m.Digest:
		return res, nil
	case err != nil && !(errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound):
		return nil, err
	}
	img, idx, err := a.V1(cache, to.docker)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(to.log, "pushing %s (%d blobs)\n", ref, len(a.Blobs()))
	if img != nil {
		err = remote.Write(ref, img, ropts...)
	} else {
		err = remote.WriteIndex(ref, idx, ropts...)
	}
	if err != nil {
		return nil, err
	}
	res.Pushed = true
	return res, nil
}

func insecureTransport() http.RoundTripper {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // asked for with --insecure
	return t
}
