package image

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func put(t *testing.T, c *BlobCache, s string) v1.Hash {
	t.Helper()
	h, err := c.Put([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestBlobCacheRoundTrip(t *testing.T) {
	c, err := OpenBlobCache(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	h := put(t, c, "hello")
	want, _, _ := v1.SHA256(strings.NewReader("hello"))
	if h != want {
		t.Errorf("digest %s, want %s", h, want)
	}
	got, err := c.ReadAll(h)
	if err != nil || string(got) != "hello" {
		t.Errorf("ReadAll = %q, %v", got, err)
	}
	if size, ok := c.Stat(h); !ok || size != 5 {
		t.Errorf("Stat = %d, %v", size, ok)
	}
	missing, _ := v1.NewHash("sha256:" + strings.Repeat("0", 64))
	if _, _, err := c.Open(missing); !errors.Is(err, ErrBlobNotCached) {
		t.Errorf("Open(missing) = %v", err)
	}
}

func TestBlobCacheEvictsLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	c, err := OpenBlobCache(dir, 30) // room for three 10-byte blobs
	if err != nil {
		t.Fatal(err)
	}
	a := put(t, c, "aaaaaaaaaa")
	b := put(t, c, "bbbbbbbbbb")
	cc := put(t, c, "cccccccccc")
	if _, err := c.ReadAll(a); err != nil { // a is now the most recent
		t.Fatal(err)
	}
	d := put(t, c, "dddddddddd") // evicts b, the least recently used
	for _, tt := range []struct {
		h    v1.Hash
		kept bool
	}{{a, true}, {b, false}, {cc, true}, {d, true}} {
		_, ok := c.Stat(tt.h)
		_, statErr := os.Stat(filepath.Join(dir, "blobs", "sha256", tt.h.Hex))
		if ok != tt.kept || (statErr == nil) != tt.kept {
			t.Errorf("%s: cached %v, file exists %v; want %v", tt.h, ok, statErr == nil, tt.kept)
		}
	}
	if c.Size() != 30 {
		t.Errorf("size %d, want 30", c.Size())
	}

	// Reopened, the cache knows its blobs and still fits.
	c2, err := OpenBlobCache(dir, 20)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Size() > 20 {
		t.Errorf("reopened cache holds %d bytes, bound 20", c2.Size())
	}
}

func TestBlobCacheFailedWriteLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	c, err := OpenBlobCache(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Write(func(w io.Writer) error {
		w.Write([]byte("partial"))
		return errors.New("source failed")
	})
	if err == nil {
		t.Fatal("Write succeeded")
	}
	for _, sub := range []string{"tmp", "blobs/sha256"} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		if len(entries) != 0 {
			t.Errorf("%s holds %d files after a failed write", sub, len(entries))
		}
	}
}

// A second BlobCache opened on the folder (kix push beside kix registry)
// leaves the first one's write in progress alone, and removes what a
// crashed write left long ago.
func TestBlobCacheOpenKeepsWritesInProgress(t *testing.T) {
	dir := t.TempDir()
	c, err := OpenBlobCache(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(dir, "tmp", "blob-crashed")
	if err := os.WriteFile(crashed, []byte("left by a crash"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * staleTemp)
	if err := os.Chtimes(crashed, old, old); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Write(func(w io.Writer) error {
		if _, err := w.Write([]byte("first half ")); err != nil {
			return err
		}
		if _, err := OpenBlobCache(dir, 1<<20); err != nil {
			return err
		}
		_, err := w.Write([]byte("second half"))
		return err
	})
	if err != nil {
		t.Errorf("the write in progress failed once another cache opened the folder: %v", err)
	}
	if _, err := os.Lstat(crashed); err == nil {
		t.Error("the crashed write's file is still there")
	}
}
