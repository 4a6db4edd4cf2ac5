package csi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
	"golang.org/x/sys/unix"

	"github.com/kix-project/kix/internal/flight"
	"github.com/kix-project/kix/internal/nix"
)

// Store is the node's store folder: verified store paths, fetched from
// substituters, that all volumes' views link to.
type Store struct {
	dir      string     // holds store/ and tmp/
	caches   nix.Stores // a path comes from the first that has it
	parallel int

	// mu is held shared by whatever adds to the folder or relies on what
	// is there (publish, unpublish) and exclusively by garbage collection.
	mu      sync.RWMutex
	fetches singleflight.Group
}

// NewStore returns the store in dir, filled from caches (tried in order),
// fetching up to parallel paths at once.
func NewStore(dir string, caches []*nix.BinaryCache, parallel int) (*Store, error) {
	if len(caches) == 0 {
		return nil, errors.New("no substituter to fetch store paths from")
	}
	for _, sub := range []string{"store", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("state folder: %w", err)
		}
	}
	stores := make(nix.Stores, len(caches))
	for i, c := range caches {
		stores[i] = c
	}
	return &Store{dir: dir, caches: stores, parallel: max(parallel, 1)}, nil
}

// Path is where a store path is kept on this node.
func (s *Store) Path(storePath string) string {
	return filepath.Join(s.dir, "store", nix.BaseName(storePath))
}

func (s *Store) tmpDir() string { return filepath.Join(s.dir, "tmp") }

// Fetch makes the closure of roots present in the store and returns it,
// sorted. A path's download starts as soon as its narinfo is known, while
// the rest of the closure is still being looked up. The caller holds s.mu
// shared.
func (s *Store) Fetch(ctx context.Context, roots []string) ([]string, error) {
	// The walk and the downloads are one group: the first error (a path
	// no cache has, a NAR that does not verify) stops all of them.
	// Downloads wait for one of s.parallel slots inside their goroutine
	// (not through the group's limit), so the walk never waits for them.
	g, ctx := errgroup.WithContext(ctx)
	slots := make(chan struct{}, s.parallel)
	var closure []string
	g.Go(func() error {
		return nix.WalkClosure(ctx, s.caches, roots, func(info *nix.PathInfo) error {
			closure = append(closure, info.Path)
			if s.has(info.Path) {
				return nil
			}
			g.Go(func() error {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return ctx.Err()
				}
				defer func() { <-slots }()
				return s.fetchShared(ctx, info.Path)
			})
			return nil
		})
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	slices.Sort(closure)
	return closure, nil
}

// fetchShared fetches a path once for all volumes that need it at the
// same time (see flight.Do: a volume giving up does not fail the others).
func (s *Store) fetchShared(ctx context.Context, storePath string) error {
	_, err := flight.Do(ctx, &s.fetches, storePath, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, s.fetch(ctx, storePath)
	})
	return err
}

func (s *Store) has(storePath string) bool {
	_, err := os.Lstat(s.Path(storePath))
	return err == nil
}

// fetch downloads one path from the first cache that has it, unpacking it
// into tmp/ as it streams, and renames it into place once it verified.
func (s *Store) fetch(ctx context.Context, storePath string) error {
	if s.has(storePath) {
		return nil
	}
	// Unpacked under a name of its own in tmp/, not in a folder made for
	// it: one inode fewer to allocate and remove per path. unpackNAR
	// creates the top entry exclusively.
	unpacked := filepath.Join(s.tmpDir(), "fetch-"+strconv.FormatUint(rand.Uint64(), 36)+"-"+nix.BaseName(storePath))
	defer removeAll(unpacked)
	if err := s.caches.ReadNAR(ctx, storePath, func(r io.Reader) error { return unpackNAR(r, unpacked) }); err != nil {
		return err
	}
	err := unix.Renameat2(unix.AT_FDCWD, unpacked, unix.AT_FDCWD, s.Path(storePath), unix.RENAME_NOREPLACE)
	if errors.Is(err, fs.ErrExist) {
		return nil // fetched by someone else meanwhile: same bytes
	}
	if err != nil {
		return fmt.Errorf("keeping %s: %w", storePath, err)
	}
	if err := sealTop(s.Path(storePath)); err != nil {
		return fmt.Errorf("keeping %s: %w", storePath, err)
	}
	return nil
}
