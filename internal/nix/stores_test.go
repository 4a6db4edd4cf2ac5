package nix

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// Stores reads a NAR from the first store that has the path.
func TestStoresReadNAR(t *testing.T) {
	hello, greeting, _ := helloClosure(t)
	first := newTestCache(t, "xz", greeting) // greeting only: it references nothing
	second := newTestCache(t, "zstd", hello)
	stores := Stores{first.open(t), second.open(t)}
	for _, p := range []string{greeting, hello} {
		var got []byte
		err := ReadNAR(t.Context(), stores, p, func(r io.Reader) error {
			var err error
			got, err = io.ReadAll(r)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := readNAR(t, NewLocalStore(), p); !bytes.Equal(got, want) {
			t.Errorf("%s: got %d bytes, want the %d of the local NAR", p, len(got), len(want))
		}
	}
	asked := func(p string) func(string) bool {
		return func(req string) bool { return req == "/"+HashPart(p)+".narinfo" }
	}
	if n := second.Server.Count(asked(greeting)); n != 0 {
		t.Errorf("the second cache was asked about %s, which the first has", greeting)
	}
	if n := first.Server.Count(asked(hello)); n != 1 {
		t.Errorf("the first cache was asked %d times about %s, want once", n, hello)
	}

	missing := StoreDir + "/00000000000000000000000000000000-missing"
	err := ReadNAR(t.Context(), stores, missing, func(io.Reader) error { return nil })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("a path in neither store: %v, want ErrNotFound", err)
	}
}

// A store that cannot stream (the local store) passes its NAR to read.
func TestReadNARFromNAR(t *testing.T) {
	hello, _, _ := helloClosure(t)
	var got []byte
	err := ReadNAR(t.Context(), NewLocalStore(), hello, func(r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := readNAR(t, NewLocalStore(), hello); !bytes.Equal(got, want) {
		t.Errorf("got %d bytes, want %d", len(got), len(want))
	}
	readErr := errors.New("disk full")
	if err := ReadNAR(t.Context(), NewLocalStore(), hello, func(io.Reader) error { return readErr }); !errors.Is(err, readErr) {
		t.Errorf("read's error: got %v", err)
	}
}

// A store that fails is passed over for the next, as Nix passes over a
// substituter that is down or untrusted; when none gives the path, the
// error says why each failed.
func TestStoresPassOverFailingStores(t *testing.T) {
	_, greeting, _ := helloClosure(t)
	good := newTestCache(t, "zstd", greeting)
	untrusted := newTestCache(t, "zstd", greeting)
	down, err := NewBinaryCache("http://127.0.0.1:1", BinaryCacheOptions{TrustedKeys: []string{good.Key.Public}})
	if err != nil {
		t.Fatal(err)
	}
	distrusting := untrusted.openWith(t, BinaryCacheOptions{TrustedKeys: []string{good.Key.Public}})

	stores := Stores{down, distrusting, good.open(t)}
	info, err := stores.PathInfo(t.Context(), greeting)
	if err != nil || info.Path != greeting {
		t.Fatalf("a path the third store has: %v, %v", info, err)
	}
	if _, err := stores.PathFromHash(t.Context(), HashPart(greeting)); err != nil {
		t.Errorf("by hash: %v", err)
	}

	_, err = Stores{down, distrusting}.PathInfo(t.Context(), greeting)
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), "signature") {
		t.Errorf("no store gave the path: %v; want why each failed", err)
	}
}

// A cache that answers 403 for what it lacks (a private S3 bucket) has not
// got the path, as Nix reads it.
func TestForbiddenNarinfoIsNotThere(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/nix-cache-info" {
			_, _ = io.WriteString(w, "StoreDir: /nix/store\n")
			return
		}
		http.Error(w, "AccessDenied", http.StatusForbidden)
	}))
	defer srv.Close()
	c, err := NewBinaryCache(srv.URL, BinaryCacheOptions{AllowUnsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PathInfo(t.Context(), StoreDir+"/00000000000000000000000000000000-x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a 403 narinfo: %v, want ErrNotFound", err)
	}
}

// A store whose narinfo answers but whose NAR cannot be had is passed over
// for the next that has the path.
func TestStoresPassOverAMissingNAR(t *testing.T) {
	_, greeting, _ := helloClosure(t)
	broken := newTestCache(t, "zstd", greeting)
	good := newTestCache(t, "xz", greeting)
	if err := os.Remove(broken.narFile(t, greeting)); err != nil {
		t.Fatal(err)
	}
	stores := Stores{broken.open(t), good.open(t)}
	var got []byte
	err := stores.ReadNAR(t.Context(), greeting, func(r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := readNAR(t, NewLocalStore(), greeting); !bytes.Equal(got, want) {
		t.Errorf("got %d bytes, want the %d of the local NAR", len(got), len(want))
	}
	err = Stores{broken.open(t)}.ReadNAR(t.Context(), greeting, func(io.Reader) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "nar/") {
		t.Errorf("the NAR in no store: %v; want the missing NAR named", err)
	}
	// Files, which images are made from, pass over it too.
	files, err := stores.Files(t.Context(), greeting)
	if err != nil {
		t.Fatalf("Files from a store whose NAR is missing and one that has it: %v", err)
	}
	files.Close()
}
