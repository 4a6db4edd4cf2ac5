package cache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

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
	// fault (answered with 500).
	ErrorLog func(msg string, err error)
}

// backend is where narinfos and NARs come from.
type backend interface {
	// narinfo returns the narinfo of the store path with this hash, or an
	// error wrapping nix.ErrNotFound.
	narinfo(ctx context.Context, hash string) ([]byte, error)
	// serveNAR answers GET and HEAD for nar/<name>.
	serveNAR(w http.ResponseWriter, r *http.Request, name string) error
}

// uploader is a backend that takes uploads.
type uploader interface {
	putNAR(r *http.Request, name string) error
	putNarinfo(r *http.Request, hash string) error
}

// Server is a Nix binary cache as an http.Handler.
type Server struct {
	opts      Options
	backend   backend
	cacheInfo []byte
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
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	err := s.serve(w, r)
	var ab *abortError
	if errors.As(err, &ab) {
		if s.opts.ErrorLog != nil && r.Context().Err() == nil {
			s.opts.ErrorLog(r.Method+" "+r.URL.Path, ab.err)
		}
		// The status and part of the body are sent: the only honest
		// answer left is a cut connection, which the client sees as a
		// truncated download. net/http's documented way to cut it is
		// this panic, which it recovers from.
		panic(http.ErrAbortHandler)
	}
	if err != nil {
		s.fail(w, r, err)
	}
}

// abortError is a failure after the answer has started.
type abortError struct{ err error }

func (e *abortError) Error() string { return e.err.Error() }

func abort(err error) error { return &abortError{err} }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) error {
	p := strings.TrimPrefix(r.URL.Path, "/")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return s.read(w, r, p)
	case http.MethodPut:
		return s.write(w, r, p)
	}
	w.Header().Set("Allow", "GET, HEAD, PUT")
	return &httpError{http.StatusMethodNotAllowed, r.Method + " is not supported"}
}

func (s *Server) read(w http.ResponseWriter, r *http.Request, p string) error {
	switch {
	case p == "nix-cache-info":
		w.Header().Set("Content-Type", "text/x-nix-cache-info")
		_, _ = w.Write(s.cacheInfo)
		return nil
	case isNarinfoName(p):
		data, err := s.backend.narinfo(r.Context(), strings.TrimSuffix(p, ".narinfo"))
		if err != nil {
			return err
		}
		h := w.Header()
		h["Content-Type"] = narinfoType
		h["Content-Length"] = []string{strconv.Itoa(len(data))}
		if r.Method == http.MethodGet {
			_, _ = w.Write(data)
		}
		return nil
	case strings.HasPrefix(p, "nar/"):
		return s.backend.serveNAR(w, r, strings.TrimPrefix(p, "nar/"))
	}
	return &httpError{http.StatusNotFound, "no such file"}
}

func (s *Server) write(w http.ResponseWriter, r *http.Request, p string) error {
	up, ok := s.backend.(uploader)
	if !ok {
		return &httpError{http.StatusForbidden, "this cache serves a store and takes no uploads (serve a folder with --dir)"}
	}
	if err := s.authorize(w, r); err != nil {
		return err
	}
	var err error
	switch {
	case p == "nix-cache-info":
		err = checkCacheInfoUpload(r)
	case isNarinfoName(p):
		err = up.putNarinfo(r, strings.TrimSuffix(p, ".narinfo"))
	case strings.HasPrefix(p, "nar/"):
		err = up.putNAR(r, strings.TrimPrefix(p, "nar/"))
	default:
		err = &httpError{http.StatusBadRequest, "only narinfos and NARs can be uploaded"}
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

var narinfoType = []string{"text/x-nix-narinfo"}

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
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	switch {
	case errors.As(err, &he):
		code = he.code
	case errors.Is(err, nix.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, nix.ErrHashMismatch), errors.Is(err, nix.ErrUntrusted):
		code = http.StatusBadRequest
	case r.Context().Err() != nil:
		return // the client went away
	}
	if code == http.StatusInternalServerError && s.opts.ErrorLog != nil {
		s.opts.ErrorLog(r.Method+" "+r.URL.Path, err)
	}
	http.Error(w, err.Error(), code)
}
