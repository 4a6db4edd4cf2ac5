package controller

import (
	"context"
	"errors"
	"os/exec"
	"sort"
	"time"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/image"
)

// BuildResult is a finished build.
type BuildResult struct {
	StorePath string // the image spec
	// Took is how long the build ran, wherever it ran; 0 if not known.
	Took time.Duration
}

// ImageBuilder builds NixImages. Build is called on every reconcile of an
// image being built: it returns a result when the build is done, nil while
// it runs elsewhere (the reconciler is called again when it progresses),
// a *BuildError when the build failed for a reason in the spec, and any
// other error for a failure worth retrying.
type ImageBuilder interface {
	Build(ctx context.Context, img *v1alpha1.NixImage, req image.PackageRequest) (*BuildResult, error)
}

// An Admitter is an ImageBuilder that bounds the builds running at once
// itself (builds that run elsewhere do not hold a reconcile worker). Admit
// starts the build if there is room, and otherwise says why it waits; the
// image stays Pending until it is admitted.
type Admitter interface {
	Admit(ctx context.Context, img *v1alpha1.NixImage, req image.PackageRequest) (admitted bool, why string, err error)
}

// Superseder is an ImageBuilder whose builds outlive the reconcile that
// started them: Supersede stops the builds of an image's earlier
// generations, once its spec has changed (whether or not the new one is
// built at all).
type Superseder interface {
	Supersede(ctx context.Context, img *v1alpha1.NixImage) error
}

// BuildError is a build that failed because of what was asked (a missing
// package, a package that does not build): retrying cannot help until the
// spec changes.
type BuildError struct {
	Message string // says why; ends with the end of the build log
}

func (e *BuildError) Error() string { return e.Message }

// requestFor turns a NixImage into a build request.
func requestFor(img *v1alpha1.NixImage, defaultPackageSet string) image.PackageRequest {
	req := image.PackageRequest{
		Name:       img.Namespace + "-" + img.Name,
		PackageSet: img.Spec.PackageSet,
		Contents:   img.Spec.Contents,
		Systems:    img.Spec.Systems,
		Config:     image.Config{Entrypoint: img.Spec.Entrypoint, Cmd: img.Spec.Cmd},
	}
	if req.PackageSet == "" {
		req.PackageSet = defaultPackageSet
	}
	if len(img.Spec.Env) > 0 {
		req.Config.Env = map[string]string{}
		for _, e := range img.Spec.Env {
			req.Config.Env[e.Name] = e.Value
		}
	}
	return req
}

// NixBuilder builds with the Nix the controller runs beside, in the
// reconciler itself: one build per reconcile worker at a time.
type NixBuilder struct{}

// Build implements ImageBuilder.
func (NixBuilder) Build(ctx context.Context, _ *v1alpha1.NixImage, req image.PackageRequest) (*BuildResult, error) {
	started := time.Now()
	path, err := image.BuildSpec(ctx, req)
	var execErr *exec.Error
	switch {
	case err == nil:
		return &BuildResult{StorePath: path, Took: time.Since(started)}, nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.As(err, &execErr):
		return nil, err
	}
	return nil, &BuildError{Message: err.Error()}
}

// sortedEnv lists a config's environment for flags, in name order.
func sortedEnv(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
