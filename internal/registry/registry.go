// Package registry serves images straight from a Nix store over the read
// side of the OCI distribution API: a repository name is a store path
// (REGISTRY/<hash>-<name> or REGISTRY/<hash>) or a list of packages from a
// package set (REGISTRY/pkgs/<attr>/<attr>), any tag means the same image,
// and every manifest and blob is assembled by package image from the
// path's closure the first time it is asked for.
//
// Each image manifest has its CycloneDX SBOM as an OCI 1.1 referrer
// (referrers.go), made from the same closure.
//
// The handler is one http.Handler with no other dependencies than an image
// builder; errors become the spec's JSON error bodies in one place.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kix-project/kix/internal/image"
	"github.com/kix-project/kix/internal/nix"
)

// PackageSet builds packages by attribute name, for pkgs/ repositories.
type PackageSet interface {
	// Build builds the attributes and returns their store paths; errors
	// for attributes the set lacks wrap nix.ErrUnknownAttribute.
	Build(ctx context.Context, attrs []string) ([]string, error)
}

// Authenticator decides whether a request may pull.
type Authenticator interface {
	Authenticate(r *http.Request) bool
	// Challenge is the WWW-Authenticate header of a 401 answer.
	Challenge() string
}

// Options configure a registry.
type Options struct {
	Builder *image.Builder
	// Packages serves pkgs/ names; without it they are unknown.
	Packages PackageSet
	// Auth, if set, is asked about every request.
	Auth Authenticator
	// PackagesTTL is how long a pkgs/ name keeps the store paths it built
	// before the package set is evaluated again; one minute if zero.
	PackagesTTL time.Duration
	// ErrorLog is told about server-side failures (5xx answers).
	ErrorLog func(msg string, err error)
}

// Registry is the http.Handler.
type Registry struct {
	opts Options

	mu       sync.Mutex
	packages map[string]packageEntry // pkgs/ name -> built roots

	referrers sync.Map // subject manifest digest -> *referrer (referrers.go)
}

type packageEntry struct {
	roots   []string
	expires time.Time
	// earlier are the roots the name stood for before, newest first: a
	// client that resolved the name then is still pulling their digests.
	earlier [][]string
}

// keptResolutions is how many earlier roots of a pkgs/ name stay pullable
// by digest after the package set changed under it.
const keptResolutions = 3

// New returns a registry serving what opts.Builder builds.
func New(opts Options) *Registry {
	if opts.PackagesTTL == 0 {
		opts.PackagesTTL = time.Minute
	}
	return &Registry{opts: opts, packages: map[string]packageEntry{}}
}

func (reg *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if err := reg.serve(w, r); err != nil {
		var api *apiError
		if !errors.As(err, &api) {
			api = errorf(http.StatusInternalServerError, codeUnknown, "%v", err)
		}
		if api.status >= 500 && reg.opts.ErrorLog != nil {
			reg.opts.ErrorLog("registry request failed", fmt.Errorf("%s %s: %w", r.Method, r.URL.Path, err))
		}
		if api.status == http.StatusUnauthorized && reg.opts.Auth != nil {
			w.Header().Set("WWW-Authenticate", reg.opts.Auth.Challenge())
		}
		writeError(w, r, api)
	}
}

func (reg *Registry) serve(w http.ResponseWriter, r *http.Request) error {
	if reg.opts.Auth != nil && !reg.opts.Auth.Authenticate(r) {
		return errorf(http.StatusUnauthorized, codeUnauthorized, "authentication required")
	}
	// Valid names, tags and digests never need escaping; an escaped
	// character is an attempt to smuggle a slash or a dot past the parser.
	if strings.Contains(r.URL.EscapedPath(), "%") {
		return errorf(http.StatusBadRequest, codeNameInvalid, "escaped characters are not allowed in registry paths")
	}
	rt, err := parseRoute(r.URL.Path)
	if err != nil {
		return errorf(http.StatusNotFound, codeUnsupported, "%v", err)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return errorf(http.StatusMethodNotAllowed, codeUnsupported, "this registry is read-only; %s is not supported", r.Method)
	}
	switch rt.kind {
	case routeBase:
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write([]byte("{}"))
		return err
	case routeCatalog:
		return errorf(http.StatusNotFound, codeUnsupported, "the catalog is not listed: every store path is a repository")
	}
	name, err := parseName(rt.name)
	if err != nil {
		return errorf(http.StatusBadRequest, codeNameInvalid, "%v", err)
	}
	switch rt.kind {
	case routeManifest:
		return reg.serveManifest(w, r, name, rt.reference)
	case routeBlob:
		return reg.serveBlob(w, r, name, rt.reference)
	case routeTags:
		return reg.serveTags(w, r, name)
	}
	return reg.serveReferrers(w, r, name, rt.reference)
}

// resolve returns the artifact a repository serves, building it if needed.
func (reg *Registry) resolve(ctx context.Context, name repoName) (*image.Artifact, error) {
	if name.packages != nil {
		return reg.resolvePackages(ctx, name)
	}
	path, err := reg.storePath(ctx, name)
	if err != nil {
		return nil, err
	}
	a, err := reg.opts.Builder.Build(ctx, path)
	if err != nil {
		return nil, buildError(name, err)
	}
	return a, nil
}

func (reg *Registry) storePath(ctx context.Context, name repoName) (string, error) {
	p, err := name.storePath(ctx, reg.opts.Builder.Store)
	if errors.Is(err, errNoHashLookup) {
		return "", errorf(http.StatusNotFound, codeNameUnknown, "%v", err)
	}
	if err != nil {
		return "", buildError(name, err)
	}
	return p, nil
}

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
	return a, nil
}

func (reg *Registry) packageRoots(ctx context.Context, name repoName) ([]string, error) {
	reg.mu.Lock()
	e, ok := reg.packages[name.raw]
	reg.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e.roots, nil
	}
	roots, err := reg.opts.Packages.Build(ctx, name.packages)
	if errors.Is(err, nix.ErrUnknownAttribute) {
		return nil, errorf(http.StatusNotFound, codeNameUnknown, "%s: %v", name.raw, err)
	}
	if err != nil {
		return nil, errorf(http.StatusBadGateway, codeUnknown, "%s: building packages: %v", name.raw, err)
	}
	reg.mu.Lock()
	next := packageEntry{roots: roots, expires: time.Now().Add(reg.opts.PackagesTTL), earlier: e.earlier}
	if ok && !slices.Equal(e.roots, roots) {
		next.earlier = append([][]string{e.roots}, e.earlier[:min(len(e.earlier), keptResolutions-1)]...)
	}
	reg.packages[name.raw] = next
	reg.mu.Unlock()
	return roots, nil
}

// resolveDigest is resolve for a request naming the digest d. A pkgs/ name
// whose package set changed since a client resolved its tag gives the
// artifact it stood for then, if that one holds d: the pull under way
// completes with the image it started.
func (reg *Registry) resolveDigest(ctx context.Context, name repoName, d v1.Hash) (*image.Artifact, error) {
	a, err := reg.resolve(ctx, name)
	if err != nil || name.packages == nil || holds(a, d) {
		return a, err
	}
	reg.mu.Lock()
	earlier := reg.packages[name.raw].earlier
	reg.mu.Unlock()
	for _, roots := range earlier {
		if older, err := reg.opts.Builder.BuildPackages(ctx, roots); err == nil && holds(older, d) {
			return older, nil
		}
	}
	return a, nil
}

// holds reports whether d is one of a's manifests or blobs.
func holds(a *image.Artifact, d v1.Hash) bool {
	_, ok := a.ManifestByDigest(d)
	return ok || slices.Contains(a.Blobs(), d)
}

// buildError turns a failure to build a repository's image into an API
// error: unknown paths are 404; a store that could not be read or did not
// verify is the upstream's fault, 502.
func buildError(name repoName, err error) error {
	if errors.Is(err, nix.ErrNotFound) {
		return errorf(http.StatusNotFound, codeNameUnknown, "%s: %v", name.raw, err)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return errorf(http.StatusBadGateway, codeUnknown, "%s: %v", name.raw, err)
}
