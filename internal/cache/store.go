package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/kix-project/kix/internal/nix"
)

// storeBackend makes narinfos and NARs from a store as they are asked for.
type storeBackend struct {
	store       nix.Store
	paths       nix.HashQuerier
	key         *nix.SigningKey
	compression Compression
	errorLog    func(msg string, err error)
	narinfos    sync.Map // hash -> servedNarinfo
}

// servedNarinfo is a narinfo made for one incarnation of a store path.
type servedNarinfo struct {
	path string
	id   nix.PathID
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
	return &storeBackend{store: opts.Store, paths: q, key: opts.SigningKey, compression: comp, errorLog: opts.ErrorLog}, nil
}

func (b *storeBackend) narinfo(ctx context.Context, hash string) ([]byte, error) {
	if e, ok := b.narinfos.Load(hash); ok {
		served := e.(servedNarinfo)
		// A path deleted since (nix-store --delete, a garbage collection)
		// is not served on: its NAR could not be. One made again may
		// hold other contents: its narinfo is made again too.
		id := nix.StatPathID(served.path)
		if id == served.id && id != (nix.PathID{}) {
			return served.data, nil
		}
		b.narinfos.Delete(hash)
		if id == (nix.PathID{}) {
			return nil, &nix.NotFoundError{Path: served.path, Store: b.store.String()}
		}
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
	b.narinfos.Store(hash, servedNarinfo{path: info.Path, id: nix.StatPathID(info.Path), data: data})
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
func (b *storeBackend) serveNAR(ctx *fasthttp.RequestCtx, name string) error {
	hash, narHash, comp, ok := parseStoreNARName(name)
	if !ok {
		return &httpError{http.StatusNotFound, "no such NAR"}
	}
	info, err := b.pathInfo(ctx, hash)
	if err != nil {
		return err
	}
	if info.NarHash != "sha256:"+narHash {
		return &httpError{http.StatusNotFound, fmt.Sprintf("%s has another NAR hash now (%s)", info.Path, info.NarHash)}
	}
	ctx.Response.Header.SetContentType("application/x-nix-nar")
	size := -1 // chunked
	if comp == None {
		size = int(info.NarSize)
	}
	if ctx.IsHead() {
		if size >= 0 {
			ctx.Response.Header.SetContentLength(size)
		}
		return nil
	}
	// The NAR is read after the handler returns, when fasthttp has taken
	// the RequestCtx back: it gets a context of its own.
	nar, err := b.store.NAR(context.Background(), info.Path)
	if err != nil {
		return err
	}
	ctx.Response.SetBodyStream(b.compressed(info.Path, nar, comp), size)
	return nil
}

// compressed streams nar through comp. If reading or compressing fails,
// the stream fails, and the server cuts the connection: the status and
// part of the body are sent, so the only honest answer left is a
// truncated download.
func (b *storeBackend) compressed(path string, nar io.ReadCloser, comp Compression) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		defer nar.Close()
		cw, err := comp.writer(pw)
		if err == nil {
			_, err = io.Copy(cw, nar)
			if cerr := cw.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil && !errors.Is(err, io.ErrClosedPipe) && b.errorLog != nil {
			b.errorLog("GET NAR of "+path, err)
		}
		pw.CloseWithError(err)
	}()
	return pr
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
