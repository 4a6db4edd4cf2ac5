package csi

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kix-project/kix/internal/nix"
)

func TestIsUnreachable(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("fetching /nix/store/x: %w", err) }
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", wrap(&url.Error{Op: "Get", URL: "http://cache/x.narinfo", Err: refused}), true},
		{"connection reset while reading a NAR", wrap(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), true},
		{"no such host", wrap(&url.Error{Op: "Get", URL: "http://cache/x.narinfo", Err: &net.DNSError{Err: "no such host", Name: "cache", IsNotFound: true}}), true},
		{"bare errno", wrap(syscall.ECONNREFUSED), true},
		{"502", wrap(&nix.HTTPError{URL: "http://cache/x.narinfo", Status: "502 Bad Gateway", StatusCode: 502}), true},
		{"503", wrap(&nix.HTTPError{URL: "http://cache/x.narinfo", Status: "503 Service Unavailable", StatusCode: 503}), true},
		{"403", wrap(&nix.HTTPError{URL: "http://cache/x.narinfo", Status: "403 Forbidden", StatusCode: 403}), false},
		{"disk full while unpacking", wrap(&fs.PathError{Op: "write", Path: "/var/lib/kix/tmp/x", Err: syscall.ENOSPC}), false},
		{"permission denied while unpacking", wrap(&fs.PathError{Op: "open", Path: "/var/lib/kix/tmp/x", Err: syscall.EACCES}), false},
		{"hash mismatch", wrap(nix.ErrHashMismatch), false},
		{"download cut short", wrap(fmt.Errorf("decompressing: %w", io.ErrUnexpectedEOF)), true},
		{"request timed out", wrap(&url.Error{Op: "Get", URL: "http://cache/x.narinfo", Err: timeoutError{}}), true},
		{"certificate not trusted", wrap(&url.Error{Op: "Get", URL: "https://cache/x.narinfo", Err: x509.UnknownAuthorityError{}}), false},
		{"scheme the client refuses", wrap(&url.Error{Op: "Get", URL: "ftp://cache/x.narinfo", Err: errors.New("unsupported protocol scheme \"ftp\"")}), false},
		{"text that only reads like a network error", errors.New("x: 500 lines, connection refused, no such host"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := isUnreachable(tt.err); got != tt.want {
				t.Errorf("isUnreachable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// The errors a BinaryCache really returns are told apart.
func TestFetchStatusOfCacheErrors(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // nothing listens there any more: connection refused
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	notACache := httptest.NewServer(http.NotFoundHandler())
	defer notACache.Close()
	for _, tt := range []struct {
		name string
		url  string
		want codes.Code
	}{
		{"connection refused", closed.URL, codes.Unavailable},
		{"503", failing.URL, codes.Unavailable},
		{"no nix-cache-info", notACache.URL, codes.Internal},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := nix.NewBinaryCache(tt.url, nix.BinaryCacheOptions{AllowUnsigned: true})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.PathInfo(context.Background(), "/nix/store/00000000000000000000000000000000-x")
			if err == nil {
				t.Fatal("no error")
			}
			if got := status.Code(fetchStatus("vol", err)); got != tt.want {
				t.Errorf("%v: code %s, want %s", err, got, tt.want)
			}
		})
	}
}

// timeoutError is what net/http wraps when a request times out.
type timeoutError struct{}

func (timeoutError) Error() string { return "Client.Timeout exceeded while awaiting headers" }
func (timeoutError) Timeout() bool { return true }
