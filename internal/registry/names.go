package registry

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/kix-project/kix/internal/nix"
)

// The OCI distribution spec's grammar for repository names and tags.
var (
	nameComponent = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$`)
	tagPattern    = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// maxNameLength bounds a repository name, as distribution does.
const maxNameLength = 255

// PackagesPrefix starts nixery-style names: pkgs/<attr>/<attr>/...
const PackagesPrefix = "pkgs"

// repoName is a parsed repository name: a store path (by hash, with or
// without its name) or a list of package-set attributes.
type repoName struct {
	raw      string
	hash     string   // store path repos: the 32-character hash
	basename string   // "<hash>-<name>", or "" when named by hash alone
	packages []string // pkgs/ repos: attribute names, sorted, unique
}

// parseName checks a repository name against the spec's grammar and kix's
// two naming schemes.
func parseName(name string) (repoName, error) {
	if name == "" || len(name) > maxNameLength {
		return repoName{}, fmt.Errorf("repository name must be 1 to %d characters", maxNameLength)
	}
	components := strings.Split(name, "/")
	for _, c := range components {
		if !nameComponent.MatchString(c) {
			return repoName{}, fmt.Errorf("invalid repository name component %q", c)
		}
	}
	if components[0] == PackagesPrefix {
		return parsePackages(name, components[1:])
	}
	if len(components) != 1 {
		return repoName{}, fmt.Errorf("repository %q: want <hash>-<name>, <hash>, or %s/<package>[/<package>]", name, PackagesPrefix)
	}
	hash, rest, _ := strings.Cut(name, "-")
	if len(hash) != nix.HashLen || nixbase32.ValidateString(hash) != nil {
		return repoName{}, fmt.Errorf("repository %q does not start with a store hash (32 nixbase32 characters)", name)
	}
	r := repoName{raw: name, hash: hash}
	if rest != "" {
		if _, err := nix.ParseStorePath(name); err != nil {
			return repoName{}, fmt.Errorf("repository %q is not a store path name: %w", name, err)
		}
		r.basename = name
	}
	return r, nil
}

func parsePackages(name string, attrs []string) (repoName, error) {
	if len(attrs) == 0 {
		return repoName{}, fmt.Errorf("repository %q names no packages", name)
	}
	seen := map[string]bool{}
	r := repoName{raw: name}
	for _, a := range attrs {
		if !seen[a] {
			seen[a] = true
			r.packages = append(r.packages, a)
		}
	}
	slices.Sort(r.packages)
	return r, nil
}

// parseTag checks a tag against the spec's grammar.
func parseTag(tag string) error {
	if !tagPattern.MatchString(tag) {
		return fmt.Errorf("invalid tag %q", tag)
	}
	return nil
}

// route is a parsed request path below /v2/.
type route struct {
	kind      routeKind
	name      string
	reference string // manifests: tag or digest; blobs, referrers: digest
}

type routeKind int

const (
	routeBase routeKind = iota
	routeManifest
	routeBlob
	routeTags
	routeReferrers
	routeCatalog
)

// parseRoute splits a request path into what is asked for and of which
// repository, from the end, since repository names may hold slashes.
func parseRoute(path string) (route, error) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		if path == "/v2" {
			return route{kind: routeBase}, nil
		}
		return route{}, fmt.Errorf("not a registry API path: %q", path)
	}
	if rest == "" {
		return route{kind: routeBase}, nil
	}
	if rest == "_catalog" {
		return route{kind: routeCatalog}, nil
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 3 {
		return route{}, fmt.Errorf("unknown registry API path %q", path)
	}
	name := strings.Join(parts[:len(parts)-2], "/")
	verb, last := parts[len(parts)-2], parts[len(parts)-1]
	switch {
	case verb == "manifests":
		return route{kind: routeManifest, name: name, reference: last}, nil
	case verb == "blobs" && last != "uploads":
		return route{kind: routeBlob, name: name, reference: last}, nil
	case verb == "tags" && last == "list":
		return route{kind: routeTags, name: name}, nil
	case verb == "referrers":
		return route{kind: routeReferrers, name: name, reference: last}, nil
	}
	return route{}, fmt.Errorf("unknown registry API path %q", path)
}

// Host is the registry name manifests use for images served by kix. A
// cluster maps it to a kix registry with a containerd mirror, so manifests
// never name a real host.
const Host = "nix.internal"

// Repository returns the repository that serves a store path:
// "<hash>-<name>" when that is a valid repository name, else "<hash>".
func Repository(storePath string) string {
	base := nix.BaseName(storePath)
	if nameComponent.MatchString(base) {
		return base
	}
	return nix.HashPart(storePath)
}

// Errors StorePath wraps, for errors.Is.
var (
	// ErrInvalidName: the name is not one kix serves.
	ErrInvalidName = errors.New("invalid repository name")
	// ErrPackagesName: a pkgs/ name, which lists packages of a package set
	// instead of naming a store path.
	ErrPackagesName = errors.New("repository names packages of a package set, not a store path")
)

// errNoHashLookup: the store cannot find a store path by its hash.
var errNoHashLookup = errors.New("cannot look up a store path by hash alone; use <hash>-<name>")

// StorePath returns the store path a repository serves, the reverse of
// Repository: "<hash>-<name>" names it outright; "<hash>" alone is looked
// up in store, which must be a nix.HashQuerier.
func StorePath(ctx context.Context, store nix.Store, repository string) (string, error) {
	name, err := parseName(repository)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	return name.storePath(ctx, store)
}

// storePath returns the store path a repository serves (see StorePath).
func (n repoName) storePath(ctx context.Context, store nix.Store) (string, error) {
	if n.packages != nil {
		return "", fmt.Errorf("%s: %w", n.raw, ErrPackagesName)
	}
	if n.basename != "" {
		return nix.StoreDir + "/" + n.basename, nil
	}
	q, ok := store.(nix.HashQuerier)
	if !ok {
		return "", fmt.Errorf("%s: %s %w", n.raw, store, errNoHashLookup)
	}
	return q.PathFromHash(ctx, n.hash)
}
