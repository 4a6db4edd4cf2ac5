package nix

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/kix-project/kix/test/fixture"
	"github.com/nix-community/go-nix/pkg/narinfo"
)

// The fixture closure: hello refers to hello-greeting and busybox (about
// 2 MB, referring to itself).
func helloClosure(t *testing.T) (hello, greeting, busybox string) {
	t.Helper()
	hello = fixture.Build(t, "hello")
	for _, p := range fixture.Closure(t, hello) {
		switch {
		case strings.HasSuffix(p, "-hello-greeting-1.0"):
			greeting = p
		case strings.Contains(p, "-busybox-"):
			busybox = p
		}
	}
	if greeting == "" || busybox == "" {
		t.Fatalf("closure of %s lacks hello-greeting or busybox: %v", hello, fixture.Closure(t, hello))
	}
	return hello, greeting, busybox
}

func TestBinaryCacheMatchesLocalStore(t *testing.T) {
	hello, _, _ := helloClosure(t)
	closure := fixture.Closure(t, hello)
	local := NewLocalStore()
	for _, compression := range []string{"none", "xz", "zstd", "bzip2", "gzip"} {
		t.Run(compression, func(t *testing.T) {
			t.Parallel()
			tc := newTestCache(t, compression, hello)
			cache := tc.open(t)
			for _, p := range closure {
				want, err := local.PathInfo(t.Context(), p)
				if err != nil {
					t.Fatal(err)
				}
				got, err := cache.PathInfo(t.Context(), p)
				if err != nil {
					t.Fatal(err)
				}
				opts := cmp.Options{cmpopts.IgnoreFields(PathInfo{}, "Signatures"), cmpopts.EquateEmpty()}
				if diff := cmp.Diff(want, got, opts); diff != "" {
					t.Errorf("PathInfo(%s) mismatch (-local +cache):\n%s", p, diff)
				}
				if len(got.Signatures) != 1 || !strings.HasPrefix(got.Signatures[0], "test-cache-1:") {
					t.Errorf("PathInfo(%s).Signatures = %q, want one by test-cache-1", p, got.Signatures)
				}
				if !bytes.Equal(readNAR(t, cache, p), readNAR(t, local, p)) {
					t.Errorf("NAR of %s from the cache differs from the local store's", p)
				}
			}
			infos, err := Closure(t.Context(), cache, hello)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(closure, pathsOf(infos)); diff != "" {
				t.Errorf("Closure mismatch (-nix-store -qR +cache):\n%s", diff)
			}
			if n := tc.Server.Count(func(p string) bool { return p == "/nix-cache-info" }); n != 1 {
				t.Errorf("nix-cache-info fetched %d times, want 1", n)
			}
		})
	}
}

func pathsOf(infos []*PathInfo) []string {
	paths := make([]string, len(infos))
	for i, info := range infos {
		paths[i] = info.Path
	}
	return paths
}

func TestBinaryCacheFiles(t *testing.T) {
	hello, _, _ := helloClosure(t)
	cache := newTestCache(t, "zstd", hello).open(t)
	local := NewLocalStore()
	for _, p := range fixture.Closure(t, hello) {
		want, got := readFiles(t, local, p), readFiles(t, cache, p)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Files(%s) mismatch (-local +cache):\n%s", p, diff)
		}
	}
}

func TestBinaryCacheSignatures(t *testing.T) {
	hello, greeting, _ := helloClosure(t)
	keyA := fixture.NewSigningKey(t, "test-cache-a")
	keyB := fixture.NewSigningKey(t, "test-cache-b")
	impostor := fixture.NewSigningKey(t, "test-cache-a") // A's name, another key
	tc := newTestCacheSigned(t, "none", keyA, hello)
	stripSignatures(t, tc.narinfoFile(greeting))
	unsigned := "no valid signature from a trusted key in " + tc.URL()
	tests := []struct {
		name    string
		path    string
		keys    []string
		unsafe  bool // AllowUnsigned
		wantErr string
	}{
		{name: "signer trusted", path: hello, keys: []string{keyA.Public}},
		{name: "another key trusted", path: hello, keys: []string{keyB.Public},
			wantErr: unsigned + " (signed by: test-cache-a)"},
		{name: "signer among trusted", path: hello, keys: []string{keyB.Public, keyA.Public}},
		{name: "another key of the signer's name", path: hello, keys: []string{impostor.Public},
			wantErr: unsigned},
		{name: "signer after a key of its name", path: hello, keys: []string{impostor.Public, keyA.Public}},
		{name: "unsigned allowed", path: hello, unsafe: true},
		{name: "no trusted keys", path: hello, wantErr: unsigned},
		{name: "narinfo without signature", path: greeting, keys: []string{keyA.Public},
			wantErr: unsigned + " (signed by: none)"},
		{name: "narinfo without signature, unsigned allowed", path: greeting, unsafe: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cache := tc.openWith(t, BinaryCacheOptions{TrustedKeys: tt.keys, AllowUnsigned: tt.unsafe})
			_, err := cache.PathInfo(t.Context(), tt.path)
			checkErr(t, err, tt.wantErr, tt.path)
		})
	}
}

// checkErr checks that err contains want and names path, or is nil if want
// is empty.
func checkErr(t *testing.T, err error, want, path string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case err != nil && (!strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path)):
		t.Fatalf("error %q does not contain %q and %s", err, want, path)
	}
}

func stripSignatures(t *testing.T, name string) {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "Sig: ") {
			kept = append(kept, line)
		}
	}
	if err := os.WriteFile(name, []byte(strings.Join(kept, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestNewBinaryCacheErrors(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		key     string
		wantErr string
	}{
		{name: "key without name", url: "http://cache", key: "bm90IGEga2V5", wantErr: `"bm90IGEga2V5"`},
		{name: "key not base64", url: "http://cache", key: "k:!!!", wantErr: `"k:!!!"`},
		{name: "key too short", url: "http://cache", key: "k:bm90IGEga2V5", wantErr: `"k:bm90IGEga2V5"`},
		{name: "not http", url: "file:///tmp/cache", wantErr: "want http:// or https://"},
		{name: "no host", url: "http:///cache", wantErr: "want http:// or https://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var keys []string
			if tt.key != "" {
				keys = []string{tt.key}
			}
			_, err := NewBinaryCache(tt.url, BinaryCacheOptions{TrustedKeys: keys})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewBinaryCache error = %v, want one containing %s", err, tt.wantErr)
			}
		})
	}
}

func TestBinaryCacheNotFound(t *testing.T) {
	hello, _, _ := helloClosure(t)
	tc := newTestCache(t, "none", hello)
	cache := tc.open(t)
	missing := StoreDir + "/00000000000000000000000000000000-missing"
	want := &NotFoundError{Path: missing, Store: tc.URL()}
	for range 2 {
		_, err := cache.PathInfo(t.Context(), missing)
		var got *NotFoundError
		if !errors.Is(err, ErrNotFound) || !errors.As(err, &got) {
			t.Fatalf("PathInfo(%s) error = %v, want ErrNotFound", missing, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("NotFoundError mismatch (-want +got):\n%s", diff)
		}
	}
	if _, err := cache.NAR(t.Context(), missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("NAR(%s) error = %v, want ErrNotFound", missing, err)
	}
	if n := tc.Server.Count(narinfoRequest); n != 1 {
		t.Errorf("%d narinfo requests, want 1 (a missing path is remembered)", n)
	}
}

func TestBinaryCacheMalformedPaths(t *testing.T) {
	srv := fixture.ServeDir(t, t.TempDir())
	cache, err := NewBinaryCache(srv.URL, BinaryCacheOptions{AllowUnsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	valid := StoreDir + "/00000000000000000000000000000000-x"
	for _, p := range []string{"", "../etc", "/nix/store/short", valid + "/bin/sh", "/gnu/store/00000000000000000000000000000000-x", "/nix/store/../etc/passwd"} {
		if _, err := cache.PathInfo(t.Context(), p); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("PathInfo(%q) error = %v, want a malformed path error", p, err)
		}
		if _, err := cache.NAR(t.Context(), p); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("NAR(%q) error = %v, want a malformed path error", p, err)
		}
	}
	if n := srv.Count(anyRequest); n != 0 {
		t.Errorf("%d requests made for malformed paths, want 0", n)
	}
}

func TestBinaryCacheCacheDir(t *testing.T) {
	hello, _, busybox := helloClosure(t)
	tc := newTestCache(t, "zstd", hello)
	want := readNAR(t, NewLocalStore(), busybox)
	cacheDir := t.TempDir()
	opts := BinaryCacheOptions{TrustedKeys: []string{tc.Key.Public}, CacheDir: cacheDir}
	cache := tc.openWith(t, opts)
	checkNAR := func(c *BinaryCache, wantRequests int) {
		t.Helper()
		if got := readNAR(t, c, busybox); !bytes.Equal(got, want) {
			t.Errorf("NAR of %s differs from the local store's", busybox)
		}
		if n := tc.Server.Count(narRequest); n != wantRequests {
			t.Errorf("%d NAR requests, want %d", n, wantRequests)
		}
	}
	checkNAR(cache, 1)
	checkNAR(cache, 1)

	info, err := cache.PathInfo(t.Context(), busybox)
	if err != nil {
		t.Fatal(err)
	}
	kept := strings.TrimPrefix(info.NarHash, "sha256:") + ".nar"
	if diff := cmp.Diff([]string{kept}, dirNames(t, cacheDir)); diff != "" {
		t.Errorf("cache dir mismatch (-want +got):\n%s", diff)
	}
	checkNAR(tc.openWith(t, opts), 1) // another BinaryCache reuses the directory

	if err := os.Truncate(filepath.Join(cacheDir, kept), 100); err != nil {
		t.Fatal(err)
	}
	checkNAR(cache, 2) // a kept NAR of the wrong size is downloaded again
}

func TestBinaryCacheConcurrentNAR(t *testing.T) {
	hello, _, busybox := helloClosure(t)
	tc := newTestCache(t, "zstd", hello)
	want := readNAR(t, NewLocalStore(), busybox)
	cache := tc.openWith(t, BinaryCacheOptions{TrustedKeys: []string{tc.Key.Public}, CacheDir: t.TempDir()})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			rc, err := cache.NAR(t.Context(), busybox)
			if err != nil {
				t.Error(err)
				return
			}
			defer rc.Close()
			if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, want) {
				t.Errorf("NAR of %s differs from the local store's (read error %v)", busybox, err)
			}
		})
	}
	wg.Wait()
	if n := tc.Server.Count(narRequest); n != 1 {
		t.Errorf("%d NAR requests, want 1", n)
	}
}

func TestBinaryCacheTempNAR(t *testing.T) {
	hello, _, _ := helloClosure(t)
	tc := newTestCache(t, "bzip2", hello)
	cache := tc.open(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	want := readNAR(t, NewLocalStore(), hello)
	for range 2 {
		if got := readNAR(t, cache, hello); !bytes.Equal(got, want) {
			t.Errorf("NAR of %s differs from the local store's", hello)
		}
		if names := dirNames(t, tmp); len(names) > 0 {
			t.Errorf("temporary files left after Close: %v", names)
		}
	}
	if n := tc.Server.Count(narRequest); n != 2 {
		t.Errorf("%d NAR requests, want 2 (no CacheDir)", n)
	}
}

func TestBinaryCacheUnsupportedCompression(t *testing.T) {
	_, greeting, _ := helloClosure(t)
	tc := newTestCache(t, "br", greeting)
	cache := tc.open(t)
	if _, err := cache.PathInfo(t.Context(), greeting); err != nil {
		t.Fatal(err)
	}
	_, err := cache.NAR(t.Context(), greeting)
	checkErr(t, err, `unsupported compression "br"`, greeting)
}

func TestBinaryCacheNARURL(t *testing.T) {
	hello, _, _ := helloClosure(t)
	want := readNAR(t, NewLocalStore(), hello)
	t.Run("cache under a path", func(t *testing.T) {
		tc := newTestCache(t, "zstd", hello)
		srv := httptest.NewServer(http.StripPrefix("/cache", http.FileServer(http.Dir(tc.Dir))))
		t.Cleanup(srv.Close)
		cache, err := NewBinaryCache(srv.URL+"/cache/", BinaryCacheOptions{TrustedKeys: []string{tc.Key.Public}})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := cache.String(), srv.URL+"/cache"; got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
		if got := readNAR(t, cache, hello); !bytes.Equal(got, want) {
			t.Errorf("NAR of %s differs from the local store's", hello)
		}
	})
	t.Run("absolute NAR URL", func(t *testing.T) {
		tc := newTestCache(t, "zstd", hello)
		editFile(t, tc.narinfoFile(hello), "URL: nar/", "URL: "+tc.URL()+"/nar/")
		if got := readNAR(t, tc.open(t), hello); !bytes.Equal(got, want) {
			t.Errorf("NAR of %s differs from the local store's", hello)
		}
	})
}

func TestBinaryCacheCacheInfo(t *testing.T) {
	path := StoreDir + "/00000000000000000000000000000000-x"
	tests := []struct {
		name      string
		cacheInfo string // "" for none
		wantErr   string
	}{
		{name: "missing", wantErr: " is not a Nix binary cache: GET "},
		{name: "other store", cacheInfo: "StoreDir: /gnu/store\n", wantErr: " is for store /gnu/store, not /nix/store"},
		{name: "no StoreDir", cacheInfo: "<html>hello</html>\n", wantErr: " is not a Nix binary cache: "},
		{name: "Nix store", cacheInfo: "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n", wantErr: " is not in http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.cacheInfo != "" {
				if err := os.WriteFile(filepath.Join(dir, "nix-cache-info"), []byte(tt.cacheInfo), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			srv := fixture.ServeDir(t, dir)
			cache, err := NewBinaryCache(srv.URL, BinaryCacheOptions{AllowUnsigned: true})
			if err != nil {
				t.Fatal(err)
			}
			_, err = cache.PathInfo(t.Context(), path)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), srv.URL) {
				t.Fatalf("PathInfo error = %v, want one naming %s and containing %q", err, srv.URL, tt.wantErr)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	const (
		hello    = "/nix/store/y2zsg6rkmgjs0pqm8l06pr8kfdws6996-hello-2.12.1"
		greeting = "043v0czcrw7i3kjcmcq9g3h1q3m21ygn-hello-greeting-1.0"
		busybox  = "6w87bx2n0rpqnbfrrf1d8dsaav14lsgc-busybox-1.35.0"
		narHash  = "sha256:027yibwyphnw5ifq69kf50avqvrnd0waqw2p90hqclk29cj1apim"
		prefix   = "1;" + hello + ";" + narHash + ";856;"
	)
	tests := []struct {
		name       string
		narHash    string
		references string
		want       string
	}{
		{name: "no references", narHash: narHash, want: prefix},
		{name: "sorted references", narHash: narHash, references: greeting + " " + busybox,
			want: prefix + "/nix/store/" + greeting + ",/nix/store/" + busybox},
		{name: "unsorted references", narHash: narHash, references: busybox + " " + greeting,
			want: prefix + "/nix/store/" + greeting + ",/nix/store/" + busybox},
		{name: "base16 NAR hash", narHash: "sha256:355e15244b62528621485770ac3868366fbc15286e26835d2cdcc2ebf98afe08",
			want: prefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := "StorePath: " + hello + "\nURL: nar/x.nar\nCompression: none\n" +
				"NarHash: " + tt.narHash + "\nNarSize: 856\nReferences: " + tt.references + "\n"
			ni, err := narinfo.Parse(strings.NewReader(text))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, fingerprint(ni)); diff != "" {
				t.Errorf("fingerprint mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
