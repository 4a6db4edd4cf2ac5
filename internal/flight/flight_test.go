package flight

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/singleflight"
)

// A caller waiting on a run whose caller gave up runs the work itself; the
// one that gave up gets its own error.
func TestWaiterOutlivesAnAbandonedRun(t *testing.T) {
	var g singleflight.Group
	var runs atomic.Int32
	started := make(chan struct{})
	work := func(ctx context.Context) (string, error) {
		if runs.Add(1) == 1 {
			close(started)
			<-ctx.Done()
			return "", ctx.Err()
		}
		return "done", nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := Do(ctx, &g, "k", work); first <- err }()
	<-started
	type result struct {
		v   string
		err error
	}
	second := make(chan result, 1)
	go func() { v, err := Do(context.Background(), &g, "k", work); second <- result{v, err} }()
	// Time for the second caller to join the first run. Should it be late,
	// it runs the work itself and the test passes without having shown
	// anything; it cannot fail for that reason.
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("the caller that gave up got %v, want context.Canceled", err)
	}
	if r := <-second; r.err != nil || r.v != "done" {
		t.Errorf("the caller still waiting got %q, %v; want done", r.v, r.err)
	}
}

// A run that fails while its caller is still there fails every caller that
// shared it: the work is not retried.
func TestSharedFailure(t *testing.T) {
	var g singleflight.Group
	boom := errors.New("boom")
	if _, err := Do(context.Background(), &g, "k", func(context.Context) (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Errorf("got %v, want boom", err)
	}
	if v, err := Do(context.Background(), &g, "k", func(context.Context) (error, error) { return nil, nil }); v != nil || err != nil {
		t.Errorf("a nil interface result: %v, %v", v, err)
	}
}
