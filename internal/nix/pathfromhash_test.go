package nix

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kix-project/kix/test/fixture"
)

func TestPathFromHash(t *testing.T) {
	hello := fixture.Build(t, "hello")
	tc := newTestCache(t, "none", hello)
	for _, s := range []interface {
		Store
		HashQuerier
	}{NewLocalStore(), tc.open(t)} {
		t.Run(s.String(), func(t *testing.T) {
			got, err := s.PathFromHash(context.Background(), HashPart(hello))
			if err != nil || got != hello {
				t.Errorf("PathFromHash = %q, %v; want %s", got, err, hello)
			}
			_, err = s.PathFromHash(context.Background(), "00000000000000000000000000000000")
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("PathFromHash(missing) = %v, want ErrNotFound", err)
			}
		})
	}
}

// The local store sees a path added after it last looked at the store
// folder.
func TestPathFromHashSeesNewPaths(t *testing.T) {
	s := NewLocalStore()
	file := filepath.Join(t.TempDir(), "kix-pathfromhash")
	if err := os.WriteFile(file, []byte(t.Name()+time.Now().String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PathFromHash(context.Background(), "00000000000000000000000000000000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("PathFromHash(missing) = %v, want ErrNotFound", err)
	}
	path := fixture.AddToStore(t, file)
	if got, err := s.PathFromHash(context.Background(), HashPart(path)); err != nil || got != path {
		t.Errorf("PathFromHash of a path added since = %q, %v; want %s", got, err, path)
	}
}

// A lookup that fails is not a miss: kix cache would answer 404, and Nix
// clients keep a 404 for an hour.
func TestPathFromHashReportsFailures(t *testing.T) {
	hello := fixture.Build(t, "hello")
	s := &LocalStore{Nix: filepath.Join(t.TempDir(), "no-nix")}
	_, err := s.PathFromHash(context.Background(), HashPart(hello))
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no-nix") {
		t.Errorf("PathFromHash without a nix command = %v, want its error", err)
	}
}

// A store path's base name is the store path, wherever kix runs.
func TestLocalStorePathInfoOfABaseName(t *testing.T) {
	hello := fixture.Build(t, "hello")
	t.Chdir(t.TempDir())
	info, err := NewLocalStore().PathInfo(context.Background(), BaseName(hello))
	if err != nil || info.Path != hello {
		t.Errorf("PathInfo(%s) = %+v, %v; want %s", BaseName(hello), info, err, hello)
	}
}
