package nix

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/nix-community/go-nix/pkg/nixbase32"
	"github.com/nix-community/go-nix/pkg/nixhash"
	"github.com/ulikunitz/xz"

	"github.com/kix-project/kix/internal/flight"
)

// NAR implements Store. The NAR is downloaded to a file and returned only
// once it matches the narinfo's signed NarHash and NarSize. Without a
// CacheDir the file is temporary, deleted on Close, and every call
// downloads; with one, the NAR is kept there and concurrent calls for a path
// share one download (see flight.Do: one caller giving up does not fail
// the others).
func (c *BinaryCache) NAR(ctx context.Context, path string) (io.ReadCloser, error) {
	e, err := c.entry(ctx, path)
	if err != nil {
		return nil, err
	}
	if c.cacheDir == "" {
		f, err := c.download(ctx, e, os.TempDir())
		if err != nil {
			return nil, err
		}
		return tempNAR{f}, nil
	}
	return c.cachedNAR(ctx, e)
}

// ReadNAR streams the NAR of path from the cache through read as it
// downloads, then checks it against the path's signed narinfo. read may stop
// early; the rest is read and hashed anyway. If ReadNAR returns an error,
// whatever read made of the bytes must be thrown away: the NAR did not
// verify (the error wraps ErrHashMismatch), or the narinfo did not
// (ErrUntrusted, ErrNotFound), or the download or read failed.
//
// Unlike NAR, nothing is written to disk: a caller that unpacks the NAR
// into a temporary folder and renames it into place once ReadNAR returns nil
// gets verified files with one pass over the bytes.
func (c *BinaryCache) ReadNAR(ctx context.Context, path string, read func(nar io.Reader) error) error {
	e, err := c.entry(ctx, path)
	if err != nil {
		return err
	}
	return c.streamNAR(ctx, e, read)
}

// tempNAR is a verified NAR in a temporary file, deleted on Close.
type tempNAR struct{ *os.File }

func (t tempNAR) Close() error {
	err := t.File.Close()
	if rmErr := os.Remove(t.Name()); err == nil {
		err = rmErr
	}
	return err
}

// cachedNAR opens the NAR in CacheDir, downloading it there first if needed.
func (c *BinaryCache) cachedNAR(ctx context.Context, e *cacheEntry) (io.ReadCloser, error) {
	name := filepath.Join(c.cacheDir, strings.TrimPrefix(e.info.NarHash, "sha256:")+".nar")
	if f := openSized(name, e.info.NarSize); f != nil {
		return f, nil
	}
	_, err := flight.Do(ctx, &c.downloads, name, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, c.fill(ctx, e, name)
	})
	if err != nil {
		return nil, err
	}
	if f := openSized(name, e.info.NarSize); f != nil {
		return f, nil
	}
	return nil, fmt.Errorf("%s: NAR from %s vanished from %s", e.info.Path, c, c.cacheDir)
}

// fill downloads the NAR into CacheDir as name, unless a call that just
// finished already did.
func (c *BinaryCache) fill(ctx context.Context, e *cacheEntry, name string) error {
	if f := openSized(name, e.info.NarSize); f != nil {
		return f.Close()
	}
	if err := os.MkdirAll(c.cacheDir, 0o755); err != nil {
		return fmt.Errorf("%s: NAR cache: %w", e.info.Path, err)
	}
	f, err := c.download(ctx, e, c.cacheDir)
	if err != nil {
		return err
	}
	err = f.Close()
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("%s: keeping NAR from %s: %w", e.info.Path, c, err)
	}
	return nil
}

// openSized opens a cached NAR if it has the expected size. One that does
// not (a crash, a full disk) is deleted.
func openSized(name string, size uint64) *os.File {
	f, err := os.Open(name)
	if err != nil {
		return nil
	}
	fi, err := f.Stat()
	if err == nil && fi.Mode().IsRegular() && uint64(fi.Size()) == size {
		return f
	}
	f.Close()
	os.Remove(name)
	return nil
}

// download writes the verified NAR of e to a new file in dir and returns it,
// positioned at its start. On error no file is left behind.
func (c *BinaryCache) download(ctx context.Context, e *cacheEntry, dir string) (_ *os.File, err error) {
	f, err := os.CreateTemp(dir, ".nar-download-*")
	if err != nil {
		return nil, fmt.Errorf("downloading NAR of %s: %w", e.info.Path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	err = c.streamNAR(ctx, e, func(nar io.Reader) error {
		_, err := io.Copy(f, nar)
		return err
	})
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("downloading NAR of %s: %w", e.info.Path, err)
	}
	return f, nil
}

// streamNAR downloads the NAR file of e, passes the NAR it decompresses to
// read, and checks it against the signed NarHash and NarSize; NAR and
// ReadNAR both read a cache through it. It reads at most one byte more
// than NarSize.
//
// The compressed file's FileHash and FileSize are not checked: they are
// not signed, so they add no trust to the signed NAR hash, and Nix does not
// check them when it substitutes either (a cache whose narinfos give wrong
// ones still serves Nix).
func (c *BinaryCache) streamNAR(ctx context.Context, e *cacheEntry, read func(nar io.Reader) error) error {
	path := e.info.Path
	ref, err := url.Parse(e.nar.URL)
	if err != nil {
		return fmt.Errorf("%s: NAR URL in %s: %w", path, c, err)
	}
	u := c.base.ResolveReference(ref).String()
	resp, err := c.get(ctx, u)
	if err != nil {
		return fmt.Errorf("downloading NAR of %s: %w", path, err)
	}
	defer resp.Body.Close()
	ni := *e.nar
	ni.FileHash, ni.FileSize = nil, 0
	if err := verifyNAR(resp.Body, &ni, read); err != nil {
		return fmt.Errorf("%s: %s: %w", path, u, err)
	}
	return nil
}

// decompress undoes a narinfo's Compression. ParseNarinfo reads a missing
// Compression as bzip2, as Nix does.
func decompress(compression string, r io.Reader) (io.ReadCloser, error) {
	switch compression {
	case "none":
		return io.NopCloser(r), nil
	case "xz":
		xr, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		return io.NopCloser(xr), nil
	case "zstd":
		zr, err := zstd.NewReader(r, zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	case "bzip2":
		return io.NopCloser(bzip2.NewReader(r)), nil
	case "gzip":
		return gzip.NewReader(r)
	}
	return nil, fmt.Errorf("unsupported compression %q", compression)
}

// zstdMaxWindow bounds the window a zstd frame may ask the decoder to
// allocate, as libzstd's default (window log 27) bounds Nix's: the frame
// header is not signed, and klauspost's own bound is 512 MiB.
const zstdMaxWindow = 128 << 20

// digest takes the SHA-256 of what is written to it, and counts it.
type digest struct {
	h hash.Hash
	n uint64
}

func newDigest() *digest { return &digest{h: sha256.New()} }

func (d *digest) Write(p []byte) (int, error) {
	d.h.Write(p)
	d.n += uint64(len(p))
	return len(p), nil
}

func (d *digest) matches(want *nixhash.HashWithEncoding) bool {
	return want.Algo() == nixhash.SHA256 && bytes.Equal(d.h.Sum(nil), want.Digest())
}

// String gives the hash as narinfos do: "sha256:<nixbase32>".
func (d *digest) String() string {
	return "sha256:" + nixbase32.EncodeToString(d.h.Sum(nil))
}
