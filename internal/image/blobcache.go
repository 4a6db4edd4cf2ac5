package image

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DefaultCacheBytes bounds a BlobCache unless told otherwise.
const DefaultCacheBytes = 10 << 30

// ErrBlobNotCached is returned for digests the cache does not hold.
var ErrBlobNotCached = errors.New("blob not in cache")

// BlobCache keeps blobs on disk under dir/blobs/sha256/<hex>, named by
// their SHA-256, and at most maxBytes of them: writing past the bound
// evicts the least recently used. A blob is written to a temporary file and
// renamed into place once its digest is known, so a reader never sees a
// partial blob and a crash leaves nothing behind that looks valid.
type BlobCache struct {
	dir      string
	maxBytes int64

	mu      sync.Mutex
	entries map[v1.Hash]*list.Element // values are *cacheEntry
	lru     *list.List                // front: most recently used
	total   int64
}

type cacheEntry struct {
	digest v1.Hash
	size   int64
}

// staleTemp is how long a temporary file may go unwritten before a new
// BlobCache on the folder takes it for a crashed write's.
const staleTemp = time.Hour

// OpenBlobCache opens (creating if needed) the cache in dir. Blobs already
// there are kept, oldest access first in line for eviction.
func OpenBlobCache(dir string, maxBytes int64) (*BlobCache, error) {
	c := &BlobCache{dir: dir, maxBytes: maxBytes, entries: map[v1.Hash]*list.Element{}, lru: list.New()}
	for _, d := range []string{c.blobDir(), c.tmpDir(), filepath.Join(dir, "layers")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// Temporary files nothing has written to for a while are from writes
	// a crash interrupted; the others may be another kix's on the same
	// folder (kix push beside kix registry), still writing.
	if tmps, err := os.ReadDir(c.tmpDir()); err == nil {
		for _, t := range tmps {
			if fi, err := t.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
				os.Remove(filepath.Join(c.tmpDir(), t.Name()))
			}
		}
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.evictLocked(v1.Hash{})
	c.mu.Unlock()
	return c, nil
}

func (c *BlobCache) blobDir() string { return filepath.Join(c.dir, "blobs", "sha256") }
func (c *BlobCache) tmpDir() string  { return filepath.Join(c.dir, "tmp") }

func (c *BlobCache) path(h v1.Hash) string { return filepath.Join(c.blobDir(), h.Hex) }

func (c *BlobCache) load() error {
	files, err := os.ReadDir(c.blobDir())
	if err != nil {
		return err
	}
	type found struct {
		entry *cacheEntry
		atime time.Time
	}
	var all []found
	for _, f := range files {
		h, err := v1.NewHash("sha256:" + f.Name())
		if err != nil {
			continue
		}
		fi, err := f.Info()
		if err != nil {
			continue
		}
		all = append(all, found{&cacheEntry{h, fi.Size()}, fi.ModTime()})
	}
	slices.SortFunc(all, func(a, b found) int { return b.atime.Compare(a.atime) })
	for _, f := range all {
		c.entries[f.entry.digest] = c.lru.PushBack(f.entry)
		c.total += f.entry.size
	}
	return nil
}

// Stat returns a cached blob's size.
func (c *BlobCache) Stat(h v1.Hash) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[h]
	if !ok {
		return 0, false
	}
	return e.Value.(*cacheEntry).size, true
}

// Open opens a cached blob and marks it used.
func (c *BlobCache) Open(h v1.Hash) (*os.File, int64, error) {
	c.mu.Lock()
	e, ok := c.entries[h]
	if ok {
		c.lru.MoveToFront(e)
	}
	c.mu.Unlock()
	if !ok {
		return nil, 0, fmt.Errorf("%s: %w", h, ErrBlobNotCached)
	}
	f, err := os.Open(c.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		c.forget(h) // removed behind the cache's back
		return nil, 0, fmt.Errorf("%s: %w", h, ErrBlobNotCached)
	}
	if err != nil {
		return nil, 0, err
	}
	now := time.Now()
	_ = os.Chtimes(c.path(h), now, now) // remembered across restarts
	return f, e.Value.(*cacheEntry).size, nil
}

// ReadAll returns a cached blob's bytes (for small blobs: manifests, configs).
func (c *BlobCache) ReadAll(h v1.Hash) ([]byte, error) {
	f, _, err := c.Open(h)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Put stores b and returns its digest.
func (c *BlobCache) Put(b []byte) (v1.Hash, error) {
	d, _, err := c.Write(func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	return d, err
}

// Write stores what write writes and returns its digest and size.
func (c *BlobCache) Write(write func(w io.Writer) error) (v1.Hash, int64, error) {
	tmp, err := os.CreateTemp(c.tmpDir(), "blob-")
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(tmp, h)}
	err = write(cw)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return v1.Hash{}, 0, err
	}
	digest := hashOf(h)
	if err := os.Rename(tmp.Name(), c.path(digest)); err != nil {
		return v1.Hash{}, 0, err
	}
	c.add(digest, cw.n)
	return digest, cw.n, nil
}

func (c *BlobCache) add(h v1.Hash, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[h]; ok {
		c.lru.MoveToFront(e)
		return
	}
	c.entries[h] = c.lru.PushFront(&cacheEntry{h, size})
	c.total += size
	c.evictLocked(h)
}

// evictLocked removes least recently used blobs until the cache fits,
// keeping keep (the blob just written, even if it alone is too big).
func (c *BlobCache) evictLocked(keep v1.Hash) {
	for c.total > c.maxBytes {
		e := c.lru.Back()
		if e == nil {
			return
		}
		entry := e.Value.(*cacheEntry)
		if entry.digest == keep {
			return
		}
		c.lru.Remove(e)
		delete(c.entries, entry.digest)
		c.total -= entry.size
		os.Remove(c.path(entry.digest))
	}
}

func (c *BlobCache) forget(h v1.Hash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[h]; ok {
		c.lru.Remove(e)
		delete(c.entries, h)
		c.total -= e.Value.(*cacheEntry).size
	}
}

// Size returns the bytes the cache holds.
func (c *BlobCache) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func hashOf(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}
