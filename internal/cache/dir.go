package cache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/kix-project/kix/internal/nix"
)

// maxMemo bounds how many narinfos a folder's backend keeps in memory
// (a few hundred bytes each); past it the memory starts afresh.
const maxMemo = 200_000

// dirBackend serves a binary cache folder.
type dirBackend struct {
	dir       string
	key       *nix.SigningKey
	maxUpload int64

	mu   sync.RWMutex
	memo map[string]memoEntry // hash -> narinfo as served

	nars fasthttp.RequestHandler // nar/<file>, from the folder
}

// memoEntry is a narinfo as served, and the file it was read from.
type memoEntry struct {
	modTime time.Time
	size    int64
	data    []byte
	checked time.Time // when the file was last seen unchanged
}

// recheckAfter is how long a remembered narinfo is served without looking
// at its file again. Uploads through the server replace the memory at
// once; a file changed behind the server's back is seen within this time.
const recheckAfter = 2 * time.Second

func newDirBackend(opts Options) (*dirBackend, error) {
	fi, err := os.Stat(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("cache folder: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("cache folder %s is not a folder", opts.Dir)
	}
	if err := checkFolderStoreDir(opts.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, "nar"), 0o755); err != nil {
		return nil, fmt.Errorf("cache folder: %w", err)
	}
	for _, d := range []string{opts.Dir, filepath.Join(opts.Dir, "nar")} {
		removeStaleUploads(d)
	}
	nars := &fasthttp.FS{
		Root:            filepath.Join(opts.Dir, "nar"),
		PathRewrite:     fasthttp.NewPathPrefixStripper(len("/nar")),
		AcceptByteRange: true,
		// Uploads replace files; every request opens the file it names.
		SkipCache: true,
	}
	return &dirBackend{dir: opts.Dir, key: opts.SigningKey, maxUpload: opts.MaxUploadSize, memo: map[string]memoEntry{},
		nars: nars.NewRequestHandler()}, nil
}

// staleUpload is how long an upload's file may go unwritten before it is
// taken for the leftover of a server that stopped mid-upload: a stalled
// upload is cut off after a minute.
const staleUpload = time.Hour

// removeStaleUploads removes the upload files in dir that nothing has
// written to for staleUpload. Another server sharing the folder may be
// receiving the others.
func removeStaleUploads(dir string) {
	names, _ := filepath.Glob(filepath.Join(dir, ".upload-*"))
	for _, name := range names {
		if fi, err := os.Lstat(name); err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > staleUpload {
			os.Remove(name)
		}
	}
}

// checkFolderStoreDir refuses a folder whose nix-cache-info is for another
// store location.
func checkFolderStoreDir(dir string) error {
	f, err := os.Open(filepath.Join(dir, "nix-cache-info"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cache folder: %w", err)
	}
	defer f.Close()
	info, err := nix.ParseCacheInfo(f)
	if err != nil {
		return fmt.Errorf("cache folder %s: %w", dir, err)
	}
	if info.StoreDir != "" && info.StoreDir != nix.StoreDir {
		return fmt.Errorf("cache folder %s is for store %s, not %s", dir, info.StoreDir, nix.StoreDir)
	}
	return nil
}

func (b *dirBackend) narinfoFile(hash string) string {
	return filepath.Join(b.dir, hash+".narinfo")
}

func (b *dirBackend) narinfo(_ context.Context, hash string) ([]byte, error) {
	b.mu.RLock()
	e, ok := b.memo[hash]
	b.mu.RUnlock()
	if ok && time.Since(e.checked) < recheckAfter {
		return e.data, nil
	}
	name := b.narinfoFile(hash)
	fi, err := os.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &nix.NotFoundError{Path: nix.StoreDir + "/" + hash + "-…", Store: "the cache"}
	}
	if err != nil {
		return nil, err
	}
	if ok && e.modTime.Equal(fi.ModTime()) && e.size == fi.Size() {
		e.checked = time.Now()
		b.mu.Lock()
		b.memo[hash] = e
		b.mu.Unlock()
		return e.data, nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	if b.key != nil {
		data = b.signed(data)
	}
	b.mu.Lock()
	if len(b.memo) >= maxMemo {
		clear(b.memo)
	}
	b.memo[hash] = memoEntry{modTime: fi.ModTime(), size: fi.Size(), data: data, checked: time.Now()}
	b.mu.Unlock()
	return data, nil
}

// signed returns the narinfo with the server's signature added (in place
// of one in the key's name that does not verify), or as it is if the key
// signed it already or it cannot be parsed (Nix will judge it).
func (b *dirBackend) signed(data []byte) []byte {
	ni, err := nix.ParseNarinfo(data)
	if err != nil || ni.NarHash == nil {
		return data
	}
	if b.key.Signed(ni) {
		return data
	}
	if err := b.key.Sign(ni); err != nil {
		return data
	}
	return []byte(ni.String())
}

// serveNAR serves nar/<name> as it is, with ranges and sendfile(2).
func (b *dirBackend) serveNAR(ctx *fasthttp.RequestCtx, name string) error {
	if !isPlainName(name) {
		return &httpError{http.StatusNotFound, "no such NAR"}
	}
	fi, err := os.Stat(filepath.Join(b.dir, "nar", name))
	if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.Mode().IsRegular() {
		return &httpError{http.StatusNotFound, "no such NAR"}
	}
	if err != nil {
		return err
	}
	b.nars(ctx)
	if ctx.Response.StatusCode() < 300 {
		ctx.Response.Header.SetContentType("application/x-nix-nar")
	}
	return nil
}

// isPlainName reports whether name is one file name, not hidden (uploads
// in progress start with a dot) and not leaving the folder.
func isPlainName(name string) bool {
	return name != "" && !strings.HasPrefix(name, ".") && !strings.ContainsAny(name, "/\\\x00")
}

// forget drops a narinfo from memory after it was replaced.
func (b *dirBackend) forget(hash string) {
	b.mu.Lock()
	delete(b.memo, hash)
	b.mu.Unlock()
}
