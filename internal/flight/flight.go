// Package flight shares one run of a piece of work among the callers that
// want it at the same time, as singleflight does, without letting the
// caller that happens to run it decide for the others: when its context
// ends (a client went away, a sibling task failed) while others still
// want the result, they run the work again themselves rather than fail
// with its reason.
package flight

import (
	"context"
	"errors"

	"golang.org/x/sync/singleflight"
)

// Do runs fn(ctx) once for the concurrent callers of key on g and returns
// its result to each. A caller whose ctx is live, given the error of a run
// whose context had ended, runs fn under its own ctx instead.
func Do[T any](ctx context.Context, g *singleflight.Group, key string, fn func(context.Context) (T, error)) (T, error) {
	for {
		led := false
		v, err, _ := g.Do(key, func() (any, error) {
			led = true
			v, err := fn(ctx)
			if err != nil && ctx.Err() != nil {
				err = &abandonedError{err}
			}
			return v, err
		})
		var abandoned *abandonedError
		if !led && errors.As(err, &abandoned) && ctx.Err() == nil {
			continue
		}
		if err != nil {
			var zero T
			return zero, err
		}
		t, _ := v.(T) // nil when T is an interface and fn returned nil
		return t, nil
	}
}

// abandonedError is a run that failed after its caller had given up.
type abandonedError struct{ err error }

func (e *abandonedError) Error() string { return e.err.Error() }
func (e *abandonedError) Unwrap() error { return e.err }
