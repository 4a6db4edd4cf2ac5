// Package storetest wraps real stores for tests that need to see how a
// store is used.
package storetest

import (
	"context"
	"sync"

	"github.com/kix-project/kix/internal/nix"
)

// Counting wraps a store and counts how often each path's files are read.
// It keeps the wrapped store's fast closure query.
type Counting struct {
	nix.Store
	mu    sync.Mutex
	reads map[string]int
	total int
}

// NewCounting wraps s.
func NewCounting(s nix.Store) *Counting {
	return &Counting{Store: s, reads: map[string]int{}}
}

// Files implements nix.FileOpener, counting.
func (c *Counting) Files(ctx context.Context, path string) (nix.FileReader, error) {
	c.mu.Lock()
	c.reads[path]++
	c.total++
	c.mu.Unlock()
	return nix.Files(ctx, c.Store, path)
}

// Closure implements nix.ClosureQuerier with the wrapped store's.
func (c *Counting) Closure(ctx context.Context, roots []string) ([]*nix.PathInfo, error) {
	return nix.Closure(ctx, c.Store, roots...)
}

// PathFromHash implements nix.HashQuerier if the wrapped store does.
func (c *Counting) PathFromHash(ctx context.Context, hash string) (string, error) {
	if q, ok := c.Store.(nix.HashQuerier); ok {
		return q.PathFromHash(ctx, hash)
	}
	return "", &nix.NotFoundError{Path: hash, Store: c.String()}
}

// Reads returns how often path's files were read.
func (c *Counting) Reads(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads[path]
}

// Total returns how many reads there were in all.
func (c *Counting) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}
