package nix

import (
	"context"
	"errors"
	"testing"

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
