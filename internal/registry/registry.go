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
	"strings"
	"sync"
	"time"

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
	packages map[string]packageEntry // pkgs/ name -> what it stands for (packages.go)

	referrers sync.Map // subject manifest digest -> *referrer (referrers.go)
}

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

// buildError turns a failure to build a repository's image into an API
// error: unknown paths are 404; a store that could not be read or did not
// verify is the upstream's fault, 502; an image larger than the layer
// cache is this server's, 500.
func buildError(name repoName, err error) error {
	if errors.Is(err, image.ErrCacheTooSmall) {
		return errorf(http.StatusInternalServerError, codeUnknown, "%s: %v", name.raw, err)
	}
	if errors.Is(err, nix.ErrNotFound) {
		return errorf(http.StatusNotFound, codeNameUnknown, "%s: %v", name.raw, err)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return errorf(http.StatusBadGateway, codeUnknown, "%s: %v", name.raw, err)
}
