package registry

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kix-project/kix/internal/image"
	"github.com/kix-project/kix/internal/nix"
)

// A pkgs/ name stands for the store paths its packages build to, and the
// package set is evaluated again once PackagesTTL has passed, so a tag
// follows the set. A digest never changes, though: a request by digest is
// served by whichever of the name's last resolutions made an image holding
// it, without evaluating the set again, so a pull that began before the
// set changed, or while it fails to evaluate, completes with the image it
// began.

// packageEntry is what one pkgs/ name stands for.
type packageEntry struct {
	current resolution
	expires time.Time
	earlier []resolution // newest first, at most keptResolutions
}

// resolution is what a pkgs/ name stood for once: the roots its packages
// built to, and the digests of the image made of them, once it was made.
type resolution struct {
	roots   []string
	digests map[v1.Hash]bool
}

// keptResolutions is how many earlier resolutions of a pkgs/ name stay
// pullable by digest after the package set changed under it.
const keptResolutions = 3

func (reg *Registry) resolvePackages(ctx context.Context, name repoName) (*image.Artifact, error) {
	if reg.opts.Packages == nil {
		return nil, errorf(http.StatusNotFound, codeNameUnknown, "%s: this registry has no package set (--package-set)", name.raw)
	}
	roots, err := reg.packageRoots(ctx, name)
	if err != nil {
		return nil, err
	}
	a, err := reg.opts.Builder.BuildPackages(ctx, roots)
	if err != nil {
		return nil, buildError(name, err)
	}
	reg.remember(name, roots, a)
	return a, nil
}

// packageRoots returns the roots name stands for, evaluating the package
// set if the last evaluation is older than PackagesTTL.
func (reg *Registry) packageRoots(ctx context.Context, name repoName) ([]string, error) {
	reg.mu.Lock()
	e, ok := reg.packages[name.raw]
	reg.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e.current.roots, nil
	}
	roots, err := reg.opts.Packages.Build(ctx, name.packages)
	if errors.Is(err, nix.ErrUnknownAttribute) {
		return nil, errorf(http.StatusNotFound, codeNameUnknown, "%s: %v", name.raw, err)
	}
	if err != nil {
		return nil, errorf(http.StatusBadGateway, codeUnknown, "%s: building packages: %v", name.raw, err)
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	// Read again: another request may have evaluated the set meanwhile,
	// to other roots that a client is now pulling.
	e = reg.packages[name.raw]
	if !slices.Equal(e.current.roots, roots) {
		earlier := slices.DeleteFunc(slices.Clone(e.earlier), func(r resolution) bool { return slices.Equal(r.roots, roots) })
		if e.current.roots != nil {
			earlier = append([]resolution{e.current}, earlier...)
		}
		e.earlier = earlier[:min(len(earlier), keptResolutions)]
		e.current = resolution{roots: roots}
	}
	e.expires = time.Now().Add(reg.opts.PackagesTTL)
	reg.packages[name.raw] = e
	return roots, nil
}

// remember records the digests of a, the image of roots, on the
// resolutions of name that have those roots.
func (reg *Registry) remember(name repoName, roots []string, a *image.Artifact) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	e, ok := reg.packages[name.raw]
	if !ok {
		return
	}
	// A copy: requests that read the entry before may still be reading
	// its resolutions.
	e.earlier = slices.Clone(e.earlier)
	for _, r := range append([]*resolution{&e.current}, pointers(e.earlier)...) {
		if r.digests == nil && slices.Equal(r.roots, roots) {
			r.digests = digestsOf(a)
		}
	}
	reg.packages[name.raw] = e
}

// resolveDigest is resolve for a request naming the digest d: for a pkgs/
// name, the image of the resolution that made one holding d, if any.
func (reg *Registry) resolveDigest(ctx context.Context, name repoName, d v1.Hash) (*image.Artifact, error) {
	if name.packages != nil && reg.opts.Packages != nil {
		reg.mu.Lock()
		e := reg.packages[name.raw]
		reg.mu.Unlock()
		for _, r := range append([]resolution{e.current}, e.earlier...) {
			if !r.digests[d] {
				continue
			}
			if a, err := reg.opts.Builder.BuildPackages(ctx, r.roots); err == nil && holds(a, d) {
				return a, nil
			}
		}
	}
	return reg.resolve(ctx, name)
}

func digestsOf(a *image.Artifact) map[v1.Hash]bool {
	ds := map[v1.Hash]bool{}
	for _, m := range a.Manifests() {
		ds[m.Digest] = true
	}
	for _, b := range a.Blobs() {
		ds[b] = true
	}
	return ds
}

// holds reports whether d is one of a's manifests or blobs.
func holds(a *image.Artifact, d v1.Hash) bool {
	_, ok := a.ManifestByDigest(d)
	return ok || slices.Contains(a.Blobs(), d)
}

func pointers[T any](xs []T) []*T {
	ps := make([]*T, len(xs))
	for i := range xs {
		ps[i] = &xs[i]
	}
	return ps
}
