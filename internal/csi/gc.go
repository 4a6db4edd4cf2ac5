package csi

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// GCResult says what a garbage collection removed.
type GCResult struct {
	Paths   int // store paths no volume uses
	Volumes int // volume folders nothing mounts
	Temp    int // leftovers of interrupted fetches and views
}

// GC removes store paths that no mounted volume's closure holds, volume
// folders whose view nothing mounts, and everything in tmp/. It holds the
// store exclusively: no publish is halfway meanwhile.
func (d *Driver) GC() (GCResult, error) {
	d.store.mu.Lock()
	defer d.store.mu.Unlock()
	return d.collect()
}

// collect is GC with the store held exclusively.
func (d *Driver) collect() (GCResult, error) {
	var res GCResult
	table, err := mounts()
	if err != nil {
		return res, err
	}
	live, orphans, err := d.liveClosures(func(dir string) bool { return viewMounted(table, dir) })
	if err != nil {
		return res, err
	}
	for _, dir := range orphans {
		if err := removeAll(dir); err != nil {
			return res, err
		}
		res.Volumes++
	}
	if res.Temp, err = removeEntries(d.store.tmpDir(), func(string) bool { return true }); err != nil {
		return res, err
	}
	res.Paths, err = removeEntries(filepath.Join(d.opts.StateDir, "store"), func(name string) bool { return !live[name] })
	return res, err
}

// removeEntries removes the entries of dir that drop says to, and returns
// how many it removed.
func removeEntries(dir string, drop func(name string) bool) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if !drop(e.Name()) {
			continue
		}
		if err := removeAll(filepath.Join(dir, e.Name())); err != nil {
			return n, fmt.Errorf("garbage collection: %w", err)
		}
		n++
	}
	return n, nil
}

// kickGC asks the collector to run soon; requests while it is waiting to
// run are merged.
func (d *Driver) kickGC() {
	select {
	case d.gcKick <- struct{}{}:
	default:
	}
}

// gcRetry is how soon the collector tries again when a publish holds the
// store.
const gcRetry = 10 * time.Second

// gcLoop collects when kicked. It never waits for the store: a collection
// waiting for it while a publish fetches (which may take minutes) would make
// every later publish and unpublish on the node wait too, as a waiting
// writer lets no new reader in. It tries again a little later instead.
func (d *Driver) gcLoop(ctx context.Context) {
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.gcKick:
		case <-retry:
		}
		retry = nil
		if !d.store.mu.TryLock() {
			retry = time.After(gcRetry)
			continue
		}
		res, err := d.collect()
		d.store.mu.Unlock()
		if err != nil {
			d.log.Error("garbage collection", "err", err)
			continue
		}
		if res != (GCResult{}) {
			d.log.Info("garbage collected", "storePaths", res.Paths, "volumes", res.Volumes, "temporary", res.Temp)
		}
	}
}
