package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/kix-project/kix/internal/nix"
)

// Options configure a cache. Exactly one of Store and Dir is set.
type Options struct {
	// Store is served read-only, narinfos and NARs made as they are asked
	// for. It must find paths by hash (nix.HashQuerier), as LocalStore does.
	Store nix.Store
	// Dir is a binary cache folder, as `nix copy --to file://DIR` writes.
	Dir string
	// SigningKey, if set, signs every narinfo served (Store) or uploaded
	// and served (Dir).
	SigningKey *nix.SigningKey
	// Compression of NARs served from Store; Zstd if empty.
	Compression Compression
	// UploadToken allows uploads into Dir from clients presenting it.
	// Empty: uploads are refused.
	UploadToken string
	// MaxUploadSize bounds one uploaded file; 8 GiB if zero.
	MaxUploadSize int64
	// Priority is announced in nix-cache-info (lower is preferred by
	// Nix); 40 if zero, as cache.nixos.org.
	Priority int
	// ErrorLog, if set, is told about failures that are the server's
	// fault (answered with 500, or a NAR cut short).
	ErrorLog func(msg string, err error)
}

// backend is where narinfos and NARs come from.
type backend interface {
	// narinfo returns the narinfo of the store path with this hash, or an
	// error wrapping nix.ErrNotFound. The bytes are not changed afterwards.
	narinfo(ctx context.Context, hash string) ([]byte, error)
	// serveNAR answers GET and HEAD for nar/<name>.
	serveNAR(ctx *fasthttp.RequestCtx, name string) error
}

// uploader is a backend that takes uploads; body is the request's.
type uploader interface {
	putNAR(body io.Reader, name string) error
	putNarinfo(body io.Reader, hash string) error
}

// Server is a Nix binary cache. It speaks HTTP/1.1 through fasthttp, which
// spends about a third less CPU per request than net/http: a cache's load
// is mostly narinfo requests of a few hundred bytes each, tens of
// thousands per second while a cluster's nodes fetch closures.
type Server struct {
	opts      Options
	backend   backend
	cacheInfo []byte
	http      *fasthttp.Server
}

// New returns a cache serving opts.Store or opts.Dir.
func New(opts Options) (*Server, error) {
	if (opts.Store == nil) == (opts.Dir == "") {
		return nil, errors.New("cache: set exactly one of a store and a folder to serve")
	}
	if opts.MaxUploadSize == 0 {
		opts.MaxUploadSize = 8 << 30
	}
	if opts.Priority == 0 {
		opts.Priority = 40
	}
	s := &Server{opts: opts}
	s.cacheInfo = []byte(nix.CacheInfo{StoreDir: nix.StoreDir, WantMassQuery: true, Priority: opts.Priority}.String())
	var err error
	if opts.Store != nil {
		s.backend, err = newStoreBackend(opts)
	} else {
		s.backend, err = newDirBackend(opts)
	}
	if err != nil {
		return nil, err
	}
	s.http = &fasthttp.Server{
		Handler: s.handle,
		// A request's headers, and a body small enough to be read
		// before the handler runs, arrive within ReadTimeout; a larger
		// (streamed) upload may take as long as it keeps moving.
		ReadTimeout:                  10 * time.Second,
		IdleTimeout:                  5 * time.Minute,
		StreamRequestBody:            true,
		MaxRequestBodySize:           maxNarinfoUpload,
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		// Connection errors (a client that went away, a malformed
		// request, answered with 400) are not the server's to report.
		Logger: quietLogger{},
	}
	return s, nil
}

// Serve answers requests on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.http.Serve(ln) }

// Shutdown stops accepting connections and waits for requests in flight,
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.ShutdownWithContext(ctx) }

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	if err := s.serve(ctx); err != nil {
		s.fail(ctx, err)
	}
}

func (s *Server) serve(ctx *fasthttp.RequestCtx) error {
	// The path as sent: the protocol's names need no escaping or
	// cleaning, and /nar/../x is refused rather than cleaned.
	p := strings.TrimPrefix(string(ctx.Request.URI().PathOriginal()), "/")
	switch {
	case ctx.IsGet(), ctx.IsHead():
		return s.read(ctx, p)
	case ctx.IsPut():
		return s.write(ctx, p)
	}
	ctx.Response.Header.Set("Allow", "GET, HEAD, PUT")
	return &httpError{http.StatusMethodNotAllowed, string(ctx.Method()) + " is not supported"}
}

func (s *Server) read(ctx *fasthttp.RequestCtx, p string) error {
	switch {
	case isNarinfoName(p):
		data, err := s.backend.narinfo(ctx, strings.TrimSuffix(p, ".narinfo"))
		if err != nil {
			return err
		}
		ctx.Response.Header.SetContentTypeBytes(narinfoType)
		ctx.Response.SetBodyRaw(data)
		return nil
	case p == "nix-cache-info":
		ctx.Response.Header.SetContentType("text/x-nix-cache-info")
		ctx.Response.SetBodyRaw(s.cacheInfo)
		return nil
	case p == "healthz":
		ctx.Response.SetBodyString("ok\n")
		return nil
	case strings.HasPrefix(p, "nar/"):
		return s.backend.serveNAR(ctx, strings.TrimPrefix(p, "nar/"))
	}
	return &httpError{http.StatusNotFound, "no such file"}
}

func (s *Server) write(ctx *fasthttp.RequestCtx, p string) error {
	up, ok := s.backend.(uploader)
	if !ok {
		return &httpError{http.StatusForbidden, "this cache serves a store and takes no uploads (serve a folder with --dir)"}
	}
	if err := s.authorize(ctx); err != nil {
		return err
	}
	body := uploadBody(ctx)
	var err error
	switch {
	case p == "nix-cache-info":
		err = checkCacheInfoUpload(body)
	case isNarinfoName(p):
		err = up.putNarinfo(body, strings.TrimSuffix(p, ".narinfo"))
	case strings.HasPrefix(p, "nar/"):
		err = up.putNAR(body, strings.TrimPrefix(p, "nar/"))
	default:
		err = &httpError{http.StatusBadRequest, "only narinfos and NARs can be uploaded"}
	}
	if err != nil {
		return err
	}
	ctx.SetStatusCode(http.StatusCreated)
	return nil
}

var narinfoType = []byte("text/x-nix-narinfo")

// isNarinfoName reports whether p is "<32-character hash>.narinfo".
func isNarinfoName(p string) bool {
	hash, ok := strings.CutSuffix(p, ".narinfo")
	return ok && isHashPart(hash)
}

// isHashPart reports whether s is a store path hash (32 nixbase32 digits).
func isHashPart(s string) bool {
	return len(s) == nix.HashLen && isBase32(s)
}

// isBase32 reports whether s has only nixbase32 digits. It runs on every
// request, so it looks each byte up in a table.
func isBase32(s string) bool {
	for i := range len(s) {
		if !nixbase32Digit[s[i]] {
			return false
		}
	}
	return true
}

var nixbase32Digit = func() (t [256]bool) {
	for _, c := range []byte("0123456789abcdfghijklmnpqrsvwxyz") {
		t[c] = true
	}
	return t
}()

// httpError is an answer other than success, with a message for the client.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequestf(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// fail answers with err: the one place errors become HTTP statuses.
func (s *Server) fail(ctx *fasthttp.RequestCtx, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	switch {
	case errors.As(err, &he):
		code = he.code
	case errors.Is(err, nix.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, nix.ErrHashMismatch), errors.Is(err, nix.ErrUntrusted):
		code = http.StatusBadRequest
	}
	if code == http.StatusInternalServerError {
		s.logError(ctx, err)
	}
	// Headers set on the way stay (Allow, WWW-Authenticate); a body does
	// not.
	ctx.SetStatusCode(code)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.Response.SetBodyString(err.Error() + "\n")
}

// logError tells ErrorLog, if set, about a failure that is the server's.
func (s *Server) logError(ctx *fasthttp.RequestCtx, err error) {
	if s.opts.ErrorLog != nil {
		s.opts.ErrorLog(string(ctx.Method())+" "+string(ctx.Request.URI().PathOriginal()), err)
	}
}
