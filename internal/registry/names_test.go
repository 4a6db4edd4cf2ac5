package registry

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kix-project/kix/internal/nix"
)

const helloBase = "y2zsg6rkmgjs0pqm8l06pr8kfdws6996-hello-2.12.1"

func TestParseName(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want repoName
		ok   bool
	}{
		{helloBase, repoName{raw: helloBase, hash: helloBase[:32], basename: helloBase}, true},
		{helloBase[:32], repoName{raw: helloBase[:32], hash: helloBase[:32]}, true},
		{"pkgs/jq/curl/jq", repoName{raw: "pkgs/jq/curl/jq", packages: []string{"curl", "jq"}}, true},
		{"pkgs", repoName{}, false},
		{"library/hello", repoName{}, false},
		{helloBase + "/extra", repoName{}, false},
		{"Y2zsg6rkmgjs0pqm8l06pr8kfdws6996-hello", repoName{}, false},
		{"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x", repoName{}, false},
		{"y2zsg6rkmgjs0pqm8l06pr8kfdws699-short", repoName{}, false},
		{"..", repoName{}, false},
		{"a//b", repoName{}, false},
		{"", repoName{}, false},
		{strings.Repeat("a", 256), repoName{}, false},
	} {
		got, err := parseName(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("parseName(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(repoName{})); tt.ok && diff != "" {
			t.Errorf("parseName(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParseRoute(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want route
		ok   bool
	}{
		{"/v2/", route{kind: routeBase}, true},
		{"/v2", route{kind: routeBase}, true},
		{"/v2/a/manifests/latest", route{kind: routeManifest, name: "a", reference: "latest"}, true},
		{"/v2/pkgs/a/b/blobs/sha256:x", route{kind: routeBlob, name: "pkgs/a/b", reference: "sha256:x"}, true},
		{"/v2/pkgs/manifests/tags/list", route{kind: routeTags, name: "pkgs/manifests"}, true},
		{"/v2/a/referrers/sha256:x", route{kind: routeReferrers, name: "a", reference: "sha256:x"}, true},
		{"/v2/a/blobs/uploads/", route{}, false},
		{"/v2/a/manifests", route{}, false},
		{"/v1/a/manifests/latest", route{}, false},
	} {
		got, err := parseRoute(tt.in)
		if (err == nil) != tt.ok || tt.ok && got != tt.want {
			t.Errorf("parseRoute(%q) = %+v, %v; want %+v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestRepository(t *testing.T) {
	for _, tt := range []struct{ path, want string }{
		{"/nix/store/" + helloBase, helloBase},
		{"/nix/store/" + helloBase[:32] + "-Python-3.12", helloBase[:32]},
		{"/nix/store/" + helloBase[:32] + "-gtk+3-3.24", helloBase[:32]},
	} {
		if got := Repository(tt.path); got != tt.want {
			t.Errorf("Repository(%s) = %s, want %s", tt.path, got, tt.want)
		}
	}
}

// fakeStore is a store that holds nothing; hashStore finds hello by hash.
type fakeStore struct{ nix.Store }

func (fakeStore) String() string { return "the test store" }

type hashStore struct{ fakeStore }

func (hashStore) PathFromHash(_ context.Context, hash string) (string, error) {
	if hash == helloBase[:32] {
		return nix.StoreDir + "/" + helloBase, nil
	}
	return "", &nix.NotFoundError{Path: hash, Store: "the test store"}
}

func TestStorePath(t *testing.T) {
	hello := nix.StoreDir + "/" + helloBase
	missing := "00000000000000000000000000000000"
	for _, tt := range []struct {
		repo    string
		store   nix.Store
		want    string
		wantErr error
	}{
		{helloBase, fakeStore{}, hello, nil},
		{helloBase[:32], hashStore{}, hello, nil},
		{helloBase[:32], fakeStore{}, "", errNoHashLookup},
		{missing, hashStore{}, "", nix.ErrNotFound},
		{"pkgs/hello", hashStore{}, "", ErrPackagesName},
		{"pkgs", hashStore{}, "", ErrInvalidName},
		{"Y2zsg6rkmgjs0pqm8l06pr8kfdws6996-hello", hashStore{}, "", ErrInvalidName},
		{helloBase + "/extra", hashStore{}, "", ErrInvalidName},
	} {
		got, err := StorePath(context.Background(), tt.store, tt.repo)
		if got != tt.want || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
			t.Errorf("StorePath(%s, %q) = %q, %v; want %q, %v", tt.store, tt.repo, got, err, tt.want, tt.wantErr)
		}
	}
}

// Whatever the input, parsing never panics, and what it accepts is a name
// the spec's grammar allows, without traversal.
func FuzzParseName(f *testing.F) {
	for _, seed := range []string{helloBase, helloBase[:32], "pkgs/a/b", "../x", "a/../b", "pkgs/.", "%2e", strings.Repeat("a-", 200)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseName(s)
		if err != nil {
			return
		}
		if len(s) > maxNameLength || strings.Contains(s, "..") || strings.Contains(s, "//") || strings.HasPrefix(s, "/") {
			t.Fatalf("accepted %q", s)
		}
		if r.packages == nil && (len(r.hash) != 32 || r.basename != "" && r.basename != s) {
			t.Fatalf("%q parsed to %+v", s, r)
		}
	})
}

func FuzzParseRoute(f *testing.F) {
	for _, seed := range []string{"/v2/", "/v2/a/manifests/latest", "/v2/a/b/blobs/sha256:0", "/v2/a/tags/list", "/v2//manifests/x", "/v2/../manifests/x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseRoute(s)
		if err != nil || r.kind == routeBase || r.kind == routeCatalog {
			return
		}
		if !strings.HasPrefix(s, "/v2/"+r.name+"/") {
			t.Fatalf("%q: name %q is not the path's prefix", s, r.name)
		}
	})
}

func FuzzParseTag(f *testing.F) {
	for _, seed := range []string{"latest", "v1.2", "-x", strings.Repeat("a", 129)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if parseTag(s) == nil && (len(s) == 0 || len(s) > 128 || strings.ContainsAny(s, "/:@ ")) {
			t.Fatalf("accepted tag %q", s)
		}
	})
}
