package nix

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kix-project/kix/test/fixture"
)

// serveFolder serves the folder of tc through handle, which is given the
// plain file server, and returns a BinaryCache over it trusting tc's key.
func serveFolder(t *testing.T, tc *testCache, opts BinaryCacheOptions, handle func(files http.Handler, w http.ResponseWriter, r *http.Request)) *BinaryCache {
	t.Helper()
	files := http.FileServer(http.Dir(tc.Dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handle(files, w, r) }))
	t.Cleanup(srv.Close)
	opts.TrustedKeys = []string{tc.Key.Public}
	c, err := NewBinaryCache(srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// flakyCache serves the folder of tc, answering 503 to the first fail
// requests whose path has the suffix, and counts those requests.
func flakyCache(t *testing.T, tc *testCache, suffix string, fail int64) (*BinaryCache, *atomic.Int64) {
	t.Helper()
	var seen atomic.Int64
	c := serveFolder(t, tc, BinaryCacheOptions{}, func(files http.Handler, w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, suffix) && seen.Add(1) <= fail {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		files.ServeHTTP(w, r)
	})
	return c, &seen
}

// A cache that answers 503 now and then is asked again, as Nix does.
func TestBinaryCacheRetriesPassingFailures(t *testing.T) {
	hello := fixture.Build(t, "hello")
	c, seen := flakyCache(t, newTestCache(t, "none", hello), ".narinfo", getAttempts-1)
	if _, err := c.PathInfo(context.Background(), hello); err != nil {
		t.Fatalf("PathInfo through %d failures: %v", getAttempts-1, err)
	}
	if n := seen.Load(); n != getAttempts {
		t.Errorf("the narinfo was asked for %d times, want %d", n, getAttempts)
	}
}

// A cache whose nix-cache-info cannot be read is not asked again for
// every path: the failure is believed for a while, so the paths of a
// closure move on to the next cache at once.
func TestBinaryCacheRemembersItIsDown(t *testing.T) {
	hello := fixture.Build(t, "hello")
	c, seen := flakyCache(t, newTestCache(t, "none", hello), "/nix-cache-info", 1<<30)
	for range 5 {
		_, err := c.PathInfo(context.Background(), hello)
		if err == nil || !strings.Contains(err.Error(), "503") {
			t.Fatalf("PathInfo from a cache that is down: %v", err)
		}
	}
	if n := seen.Load(); n != getAttempts {
		t.Errorf("nix-cache-info was asked for %d times for five paths, want %d (one call's tries)", n, getAttempts)
	}
	// A caller who gives up while another call holds the check is not
	// kept waiting.
	c.info <- struct{}{}
	defer func() { <-c.info }()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.PathInfo(ctx, hello); err == nil {
		t.Error("PathInfo with a cancelled context while nix-cache-info is being read returned no error")
	}
}

// Callers sharing a NAR download into CacheDir do not fail when the one
// that started it gives up: they download it themselves.
func TestBinaryCacheSharedDownloadOutlivesItsStarter(t *testing.T) {
	hello := fixture.Build(t, "hello")
	tc := newTestCache(t, "none", hello)
	arrived, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	var nars atomic.Int64
	c := serveFolder(t, tc, BinaryCacheOptions{CacheDir: t.TempDir()}, func(files http.Handler, w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/nar/") && nars.Add(1) == 1 {
			close(arrived)
			select { // the first download hangs until its client goes away
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		files.ServeHTTP(w, r)
	})
	starter, giveUp := context.WithCancel(context.Background())
	started := make(chan error, 1)
	go func() {
		rc, err := c.NAR(starter, hello)
		if err == nil {
			rc.Close()
		}
		started <- err
	}()
	<-arrived
	joined := make(chan error, 1)
	go func() {
		rc, err := c.NAR(context.Background(), hello)
		if err == nil {
			rc.Close()
		}
		joined <- err
	}()
	time.Sleep(200 * time.Millisecond) // the second caller joins the download
	giveUp()
	if err := <-started; err == nil {
		t.Error("the caller that gave up got its NAR")
	}
	if err := <-joined; err != nil {
		t.Errorf("the caller that joined the download: %v", err)
	}
}
