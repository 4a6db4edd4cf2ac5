package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/kix-project/kix/internal/nix"
)

// storeBackend makes narinfos and NARs from a store as they are asked for.
type storeBackend struct {
	store       nix.Store
	paths       nix.HashQuerier
	key         *nix.SigningKey
	compression Compression
	narinfos    sync.Map // hash -> servedNarinfo; a valid path's narinfo never changes
}

// servedNarinfo is a narinfo made for a store path.
type servedNarinfo struct {
	path string
	data []byte
}

func newStoreBackend(opts Options) (*storeBackend, error) {
	q, ok := opts.Store.(nix.HashQuerier)
	if !ok {
		return nil, fmt.Errorf("cache: %s cannot find store paths by hash", opts.Store)
	}
	comp := opts.Compression
	if comp == "" {
		comp = Zstd
	}
	if _, err := ParseCompression(string(comp)); err != nil {
		return nil, err
	}
	return &storeBackend{store: opts.Store, paths: q, key: opts.SigningKey, compression: comp}, nil
}

func (b *storeBackend) narinfo(ctx context.Context, hash string) ([]byte, error) {
	if e, ok := b.narinfos.Load(hash); ok {
		served := e.(servedNarinfo)
		// A path deleted since (nix-store --delete, a garbage collection)
		// is not served on: its NAR could not be.
		if _, err := os.Lstat(served.path); !errors.Is(err, fs.ErrNotExist) {
			return served.data, nil
		}
		b.narinfos.Delete(hash)
		return nil, &nix.NotFoundError{Path: served.path, Store: b.store.String()}
	}
	info, err := b.pathInfo(ctx, hash)
	if err != nil {
		return nil, err
	}
	url := "nar/" + hash + "-" + strings.TrimPrefix(info.NarHash, "sha256:") + ".nar" + b.compression.extension()
	ni, err := nix.NarinfoOf(info, url, string(b.compression))
	if err != nil {
		return nil, err
	}
	if b.key != nil {
		if err := b.key.Sign(ni); err != nil {
			return nil, err
		}
	}
	data := []byte(ni.String())
	b.narinfos.Store(hash, servedNarinfo{path: info.Path, data: data})
	return data, nil
}

func (b *storeBackend) pathInfo(ctx context.Context, hash string) (*nix.PathInfo, error) {
	path, err := b.paths.PathFromHash(ctx, hash)
	if err != nil {
		return nil, err
	}
	return b.store.PathInfo(ctx, path)
}

// serveNAR answers nar/<store hash>-<NAR hash>.nar[.xz|.zst] with the NAR
// serialised from the store, compressed as the extension says.
func (b *storeBackend) serveNAR(w http.ResponseWriter, r *http.Request, name string) error {
	hash, narHash, comp, ok := parseStoreNARName(name)
	if !ok {
		return &httpError{http.StatusNotFound, "no such NAR"}
	}
	info, err := b.pathInfo(r.Context(), hash)
	if err != nil {
		return err
	}
	if info.NarHash != "sha256:"+narHash {
		return &httpError{http.StatusNotFound, fmt.Sprintf("%s has another NAR hash now (%s)", info.Path, info.NarHash)}
	}
	w.Header().Set("Content-Type", "application/x-nix-nar")
	if comp == None {
		w.Header().Set("Content-Length", fmt.Sprint(info.NarSize))
	}
	if r.Method == http.MethodHead {
		return nil
	}
	nar, err := b.store.NAR(r.Context(), info.Path)
	if err != nil {
		return err
	}
	defer nar.Close()
	cw, err := comp.writer(w)
	if err != nil {
		return err
	}
	if _, err := io.Copy(cw, nar); err != nil {
		return abort(err)
	}
	if err := cw.Close(); err != nil {
		return abort(err)
	}
	return nil
}

// parseStoreNARName splits "<hash>-<narhash>.nar<ext>".
func parseStoreNARName(name string) (hash, narHash string, comp Compression, ok bool) {
	base, ext, found := strings.Cut(name, ".nar")
	if !found {
		return "", "", "", false
	}
	comp, ok = compressionOf(ext)
	hash, narHash, found = strings.Cut(base, "-")
	if !ok || !found || !isHashPart(hash) || len(narHash) != 52 || !isBase32(narHash) {
		return "", "", "", false
	}
	return hash, narHash, comp, true
}
