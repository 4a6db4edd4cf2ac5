package csi

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kix-project/kix/test/fixture"
)

// Each path is fetched from the first substituter that has it.
func TestFetchFromSeveralSubstituters(t *testing.T) {
	hello, closure := helloPaths(t)
	var greeting string
	for _, p := range closure {
		if strings.HasSuffix(p, "-hello-greeting-1.0") {
			greeting = p
		}
	}
	first := fixture.NewBinaryCache(t, "xz", greeting)
	second := fixture.NewBinaryCache(t, "zstd", hello)
	store, err := OpenStore(Options{
		StateDir:     t.TempDir(),
		Substituters: []string{first.URL(), second.URL()},
		TrustedKeys:  []string{first.Key.Public, second.Key.Public},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.Fetch(t.Context(), []string{hello})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(closure))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("closure (-want +got):\n%s", diff)
	}
	for _, p := range closure {
		fi, err := os.Lstat(store.Path(p))
		if err != nil {
			t.Errorf("%s was not fetched: %v", p, err)
		} else if fi.IsDir() && fi.Mode().Perm() != 0o555 {
			t.Errorf("%s is kept with mode %v, want read-only", p, fi.Mode())
		}
	}
	nars := func(p string) bool { return strings.HasPrefix(p, "/nar/") }
	if n := first.Server.Count(nars); n != 1 {
		t.Errorf("%d NARs came from the first substituter, want 1 (%s)", n, greeting)
	}
	if n, want := second.Server.Count(nars), len(closure)-1; n != want {
		t.Errorf("%d NARs came from the second substituter, want %d", n, want)
	}
}
