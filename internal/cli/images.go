package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/pflag"

	"github.com/kix-project/kix/internal/eval"
	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/internal/registry"
)

// imageRefOptions are --registry and --push: how manifests' nix.internal
// image references reach a cluster that has no nix.internal mirror.
type imageRefOptions struct {
	storeOptions
	Registry string
	Push     bool
	Insecure bool
}

func (o *imageRefOptions) addImageRefFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Registry, "registry", "", "rewrite nix.internal/ image references to this registry (HOST[:PORT]), for clusters without the mirror")
	fs.BoolVar(&o.Push, "push", false, "push every referenced image to --registry first (skipping what is there) and name it by digest")
	fs.BoolVar(&o.Insecure, "insecure-registry", false, "allow plain HTTP and unverified TLS to --registry")
	o.addStoreFlags(fs)
	o.addImageFlags(fs)
}

// publish rewrites the objects' image references for --registry, pushing
// the images first with --push (checkInput made sure --push has one).
func (o *imageRefOptions) publish(ctx context.Context, res *eval.Result, log io.Writer) error {
	if o.Registry == "" {
		return nil
	}
	refs := eval.ImageRefs(res.Objects, registry.Host+"/")
	rewrite := map[string]string{}
	for _, ref := range refs {
		rewrite[ref] = o.Registry + "/" + strings.TrimPrefix(ref, registry.Host+"/")
	}
	if o.Push && len(refs) > 0 {
		if err := o.pushAll(ctx, res, refs, rewrite, log); err != nil {
			return err
		}
	}
	eval.RewriteImages(res.Objects, rewrite)
	return nil
}

// pushAll pushes the image of each reference to REGISTRY/<repository>:<hash>
// and rewrites the reference to its digest.
func (o *imageRefOptions) pushAll(ctx context.Context, res *eval.Result, refs []string, rewrite map[string]string, log io.Writer) error {
	store, err := o.store()
	if err != nil {
		return err
	}
	b, err := o.builder(store)
	if err != nil {
		return err
	}
	for _, ref := range refs {
		repo := strings.TrimPrefix(ref, registry.Host+"/")
		repo, _, _ = strings.Cut(repo, "@")
		repo, _, _ = strings.Cut(repo, ":")
		path, err := storePathOf(ctx, store, res.StorePaths, repo)
		if err != nil {
			return fmt.Errorf("image %s: %w", ref, err)
		}
		a, err := b.Build(ctx, path)
		if err != nil {
			return fmt.Errorf("image %s: %w", ref, err)
		}
		var nopts []name.Option
		if o.Insecure {
			nopts = append(nopts, name.Insecure)
		}
		dest, err := name.ParseReference(o.Registry+"/"+repo+":"+nix.HashPart(path), nopts...)
		if err != nil {
			return usageErrorf("--registry %s: %v", o.Registry, err)
		}
		pushed, err := push(ctx, b.Cache, a, dest, pushTarget{insecure: o.Insecure, log: log})
		if err != nil {
			return fmt.Errorf("pushing %s to %s: %w", ref, dest, err)
		}
		rewrite[ref] = pushed.Reference
	}
	return nil
}

// storePathOf finds the store path a repository name stands for: among the
// evaluation's store paths, or by asking the store.
func storePathOf(ctx context.Context, store nix.Store, known []string, repo string) (string, error) {
	if len(repo) < nix.HashLen {
		return "", fmt.Errorf("%q does not name a store path", repo)
	}
	hash := repo[:nix.HashLen]
	for _, p := range known {
		if nix.HashPart(p) == hash {
			return p, nil
		}
	}
	if q, ok := store.(nix.HashQuerier); ok {
		return q.PathFromHash(ctx, hash)
	}
	return "", fmt.Errorf("no store path with hash %s", hash)
}
