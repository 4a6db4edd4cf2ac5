package nix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"golang.org/x/sync/singleflight"
)

// notFoundTTL is how long a binary cache's "no such path" is believed, so a
// closure walk or a registry asking again does not hammer the cache.
const notFoundTTL = 30 * time.Second

// BinaryCacheOptions configures a BinaryCache.
type BinaryCacheOptions struct {
	// TrustedKeys are public keys in Nix's format ("name:base64"); a
	// narinfo must carry a valid signature by one of them.
	TrustedKeys []string
	// AllowUnsigned accepts narinfos without a valid signature (like Nix's
	// require-sigs = false). Default false.
	AllowUnsigned bool
	// Client is the HTTP client; if nil, one shared by all caches that
	// keeps enough connections open for parallel fetches.
	Client *http.Client
	// CacheDir, if set, keeps verified NARs on disk (uncompressed,
	// content-addressed by NAR hash) so a path is downloaded once.
	CacheDir string
}

// BinaryCache is a Nix binary cache served over HTTP (a substituter), read
// without Nix.
//
// What is verified, and when:
//
//   - nix-cache-info is fetched on first use and must declare StoreDir
//     /nix/store.
//   - A narinfo is believed only if it is for the path asked for and carries
//     a valid signature, by a trusted key, over Nix's fingerprint of the path,
//     its NAR hash, NAR size and references (unless AllowUnsigned). Its URL,
//     compression and file hash are not signed, which is why the NAR is
//     checked as well.
//   - NAR downloads a NAR to a file, decompressed, and returns it only once
//     its SHA-256 and size equal the signed NarHash and NarSize; a NAR that
//     does not match is deleted and nothing is returned. ReadNAR streams
//     the NAR to its caller as it downloads and fails at the end if it does
//     not match: the caller throws away what it made of it. The compressed
//     file's FileHash and FileSize are not signed and, as by Nix, not
//     checked.
//   - Deriver and CA are not signed either: they are what the cache says.
//   - NARs kept in CacheDir were verified when written; on reuse only their
//     size is checked again.
//
// Verified PathInfos are kept in memory for the BinaryCache's lifetime
// (store paths never change), and the cache's word that a path is missing
// for 30 seconds.
type BinaryCache struct {
	url           string   // without a trailing slash
	base          *url.URL // url with a trailing slash, to resolve NAR URLs
	keys          []signature.PublicKey
	allowUnsigned bool
	client        *http.Client
	cacheDir      string

	// info is held while nix-cache-info is fetched, and guards what its
	// answer was: a channel, so that a caller can give up waiting.
	info         chan struct{}
	infoChecked  bool
	infoErr      error     // the last failure to read it,
	infoErrUntil time.Time // believed until then

	entries   sync.Map // store path -> *cacheEntry
	missing   sync.Map // store path -> time.Time until which it is believed missing
	downloads singleflight.Group
}

// NewBinaryCache returns the binary cache at rawURL (http or https).
func NewBinaryCache(rawURL string, opts BinaryCacheOptions) (*BinaryCache, error) {
	trimmed := strings.TrimRight(rawURL, "/")
	base, err := url.Parse(trimmed + "/")
	if err != nil {
		return nil, fmt.Errorf("binary cache URL %q: %w", rawURL, err)
	}
	if base.Scheme != "http" && base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("binary cache URL %q: want http:// or https://", rawURL)
	}
	keys, err := parseKeys(opts.TrustedKeys)
	if err != nil {
		return nil, err
	}
	client := opts.Client
	if client == nil {
		client = defaultClient
	}
	return &BinaryCache{
		url:           trimmed,
		base:          base,
		keys:          keys,
		allowUnsigned: opts.AllowUnsigned,
		client:        client,
		cacheDir:      opts.CacheDir,
		info:          make(chan struct{}, 1),
	}, nil
}

// defaultClient keeps up to 64 idle connections per cache: parallel narinfo
// lookups and NAR downloads then reuse them instead of opening (and, over
// TLS, negotiating) a connection per request, as net/http's default of two
// would make them. It reads HTTP/1.1 responses (a cache over http://, as
// kix cache in a cluster usually is) through 64 KiB, not 4: the zstd
// decoder reads a NAR a block header of 3 bytes at a time, and each one
// refilled the buffer with a read of its own (a quarter of a fetch's reads,
// and about 7% of its CPU time). HTTP/2 has buffers of its own.
//
// A cache that does not answer is given up on soon: 10 seconds to connect,
// 30 more for the headers of an answer (a NAR's body may take as long as
// it takes).
var defaultClient = &http.Client{Transport: func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.ReadBufferSize = 64 << 10
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.ResponseHeaderTimeout = 30 * time.Second
	return t
}()}

func parseKeys(keys []string) ([]signature.PublicKey, error) {
	parsed := make([]signature.PublicKey, 0, len(keys))
	for _, k := range keys {
		pk, err := signature.ParsePublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("trusted key %q: %w", k, err)
		}
		parsed = append(parsed, pk)
	}
	return parsed, nil
}

// String returns the cache's URL.
func (c *BinaryCache) String() string { return c.url }

// PathInfo implements Store. The narinfo's signature is checked before
// anything in it is believed.
func (c *BinaryCache) PathInfo(ctx context.Context, path string) (*PathInfo, error) {
	e, err := c.entry(ctx, path)
	if err != nil {
		return nil, err
	}
	return e.info, nil
}

// entry returns the verified narinfo of path, from memory if it can.
func (c *BinaryCache) entry(ctx context.Context, path string) (*cacheEntry, error) {
	sp, err := ParseStorePath(path)
	if err != nil {
		return nil, err
	}
	if e, ok := c.entries.Load(sp); ok {
		return e.(*cacheEntry), nil
	}
	if c.recentlyMissing(sp) {
		return nil, &NotFoundError{Path: sp, Store: c.String()}
	}
	if err := c.checkCacheInfo(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", sp, err)
	}
	e, err := c.fetchEntry(ctx, sp)
	if errors.Is(err, ErrNotFound) {
		c.missing.Store(sp, time.Now().Add(notFoundTTL))
	}
	if err != nil {
		return nil, err
	}
	c.entries.Store(sp, e)
	return e, nil
}

func (c *BinaryCache) recentlyMissing(path string) bool {
	until, ok := c.missing.Load(path)
	if !ok {
		return false
	}
	if time.Now().Before(until.(time.Time)) {
		return true
	}
	c.missing.CompareAndDelete(path, until)
	return false
}

// checkCacheInfo fetches nix-cache-info once and checks its StoreDir. A
// failure is believed for infoRetry, so that the paths of a closure move
// on to the next cache at once rather than each waiting out a dead one.
func (c *BinaryCache) checkCacheInfo(ctx context.Context) error {
	select {
	case c.info <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.info }()
	switch {
	case c.infoChecked:
		return nil
	case time.Now().Before(c.infoErrUntil):
		return c.infoErr
	}
	err := c.readCacheInfo(ctx)
	if err == nil {
		c.infoChecked = true
	} else if ctx.Err() == nil {
		c.infoErr, c.infoErrUntil = err, time.Now().Add(infoRetry)
	}
	return err
}

// infoRetry is how long a failure to read nix-cache-info is believed.
const infoRetry = time.Minute

func (c *BinaryCache) readCacheInfo(ctx context.Context) error {
	u := c.url + "/nix-cache-info"
	resp, err := c.get(ctx, u)
	if isStatus(err, http.StatusNotFound) {
		return fmt.Errorf("%s is not a Nix binary cache: %w", c, err)
	}
	if err != nil {
		return fmt.Errorf("binary cache %s: %w", c, err)
	}
	defer resp.Body.Close()
	info, err := ParseCacheInfo(io.LimitReader(resp.Body, 64<<10))
	if err == nil && info.StoreDir == "" {
		err = errors.New("no StoreDir")
	}
	if err != nil {
		return fmt.Errorf("%s is not a Nix binary cache: %s: %w", c, u, err)
	}
	if info.StoreDir != StoreDir {
		return fmt.Errorf("binary cache %s is for store %s, not %s", c, info.StoreDir, StoreDir)
	}
	return nil
}

// HTTPError is a binary cache's answer other than 200 OK.
type HTTPError struct {
	URL        string
	Status     string // "404 Not Found"
	StatusCode int
}

func (e *HTTPError) Error() string { return fmt.Sprintf("GET %s: %s", e.URL, e.Status) }

func isStatus(err error, code int) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.StatusCode == code
}

// get fetches u; anything but 200 OK is an *HTTPError. The caller closes
// the body. A failure that may pass (no connection, a 5xx or 429 answer)
// is tried again, getAttempts times in all, as Nix does.
func (c *BinaryCache) get(ctx context.Context, u string) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		resp, err := c.getOnce(ctx, u)
		if err == nil || attempt == getAttempts || !passing(err) || ctx.Err() != nil {
			return resp, err
		}
		select {
		case <-time.After(time.Duration(attempt*attempt) * getBackoff):
		case <-ctx.Done():
			return nil, err
		}
	}
}

// getAttempts and getBackoff: three tries, 0.1 s then 0.4 s apart.
const (
	getAttempts = 3
	getBackoff  = 100 * time.Millisecond
)

func (c *BinaryCache) getOnce(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, &HTTPError{URL: u, Status: resp.Status, StatusCode: resp.StatusCode}
	}
	return resp, nil
}

// passing reports whether a failed GET may succeed if tried again soon: a
// 5xx or 429 answer, or a connection refused or reset. A timeout is not
// (it took its time already), nor is anything the caller cancelled.
func passing(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.StatusCode >= 500 || he.StatusCode == http.StatusTooManyRequests
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}
