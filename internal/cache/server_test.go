package cache

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/nixbase32"
	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/test/fixture"
)

type request struct {
	method, path, auth string
	body               []byte
}

func do(t *testing.T, base string, r request) (int, string) {
	t.Helper()
	resp, data := doRaw(t, base, r, nil)
	return resp.StatusCode, string(data)
}

// doRaw makes a request with extra headers and returns the response, its
// body read.
func doRaw(t *testing.T, base string, r request, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, base+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

func TestStoreProtocol(t *testing.T) {
	hello := fixture.Build(t, "hello")
	key := newKey(t, "kix-test-1")
	url := serve(t, Options{Store: nix.NewLocalStore(), SigningKey: key})
	_, narinfo := do(t, url, request{method: "GET", path: "/" + nix.HashPart(hello) + ".narinfo"})
	var narURL string
	for _, l := range strings.Split(narinfo, "\n") {
		narURL, _ = strings.CutPrefix(l, "URL: ")
		if narURL != l {
			break
		}
	}
	// The same name with one digit of the NAR hash changed.
	i := strings.Index(narURL, "-") + 1
	digit := map[bool]string{true: "1", false: "0"}[narURL[i] == '0']
	otherNAR := narURL[:i] + digit + narURL[i+1:]
	missing := "/00000000000000000000000000000000.narinfo"
	tests := []struct {
		name     string
		req      request
		wantCode int
		wantBody string
	}{
		{"cache info", request{method: "GET", path: "/nix-cache-info"}, 200, "StoreDir: /nix/store\n"},
		{"narinfo", request{method: "GET", path: "/" + nix.HashPart(hello) + ".narinfo"}, 200, "Sig: kix-test-1:"},
		{"narinfo HEAD", request{method: "HEAD", path: "/" + nix.HashPart(hello) + ".narinfo"}, 200, ""},
		{"narinfo of a path the store lacks", request{method: "GET", path: missing}, 404, ""},
		{"not a hash", request{method: "GET", path: "/hello.narinfo"}, 404, ""},
		{"NAR HEAD", request{method: "HEAD", path: "/" + narURL}, 200, ""},
		{"NAR of another hash", request{method: "GET", path: "/" + otherNAR}, 404, "another NAR hash"},
		{"NAR name that is not ours", request{method: "GET", path: "/nar/../nix-cache-info"}, 404, ""},
		{"upload to a store", request{method: "PUT", path: missing, auth: "Bearer x", body: []byte("x")}, 403, "takes no uploads"},
		{"DELETE", request{method: "DELETE", path: missing}, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, url, tt.req)
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Errorf("%s %s: %d %q, want %d with %q", tt.req.method, tt.req.path, code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

// Uploads are checked before anything is accepted, and a refused one
// leaves nothing behind.
func TestUploads(t *testing.T) {
	hello := fixture.Build(t, "hello")
	var greeting string
	for _, p := range fixture.Closure(t, hello) {
		if strings.HasSuffix(p, "-hello-greeting-1.0") {
			greeting = p
		}
	}
	src := fixture.NewBinaryCache(t, "xz", hello) // what Nix would upload
	file := func(rel string) []byte {
		data, err := os.ReadFile(filepath.Join(src.Dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	narinfoOf := func(p string) (string, []byte) {
		return "/" + nix.HashPart(p) + ".narinfo", file(nix.HashPart(p) + ".narinfo")
	}
	narOf := func(p string) (string, []byte) {
		rel, _ := filepath.Rel(src.Dir, narFileOf(t, src.Dir, p))
		return "/" + rel, file(rel)
	}
	helloInfo, helloInfoData := narinfoOf(hello)
	greetInfo, greetInfoData := narinfoOf(greeting)
	greetNAR, greetNARData := narOf(greeting)
	otherNAR, _ := narOf(hello)

	key := newKey(t, "kix-test-1")
	dir := t.TempDir()
	url := serve(t, Options{Dir: dir, SigningKey: key, UploadToken: "tok"})
	noUploads := serve(t, Options{Dir: t.TempDir()})
	const bearer, basic = "Bearer tok", "Basic a2l4OnRvaw==" // kix:tok
	steps := []struct {
		name     string
		url      string
		req      request
		wantCode int
		wantBody string
	}{
		{"uploads disabled", noUploads, request{"PUT", greetNAR, bearer, greetNARData}, 403, "--upload-token"},
		{"no token", url, request{"PUT", greetNAR, "", greetNARData}, 401, "token"},
		{"wrong token", url, request{"PUT", greetNAR, "Bearer nope", greetNARData}, 401, "token"},
		{"narinfo before its NAR", url, request{"PUT", greetInfo, bearer, greetInfoData}, 400, "upload it first"},
		{"NAR under another hash", url, request{"PUT", otherNAR, bearer, greetNARData}, 400, "sha256"},
		{"NAR name Nix does not make", url, request{"PUT", "/nar/x.nar", bearer, greetNARData}, 400, "file name"},
		{"NAR kix cannot verify", url, request{"PUT", "/nar/" + strings.SplitN(strings.TrimPrefix(greetNAR, "/nar/"), ".", 2)[0] + ".nar.br", bearer, greetNARData}, 400, "kix verifies NARs compressed with"},
		{"NAR", url, request{"PUT", greetNAR, basic, greetNARData}, 201, ""},
		{"narinfo for another hash", url, request{"PUT", helloInfo, bearer, greetInfoData}, 400, "does not have hash"},
		{"narinfo with another NAR size", url, request{"PUT", greetInfo, bearer,
			[]byte(strings.Replace(string(greetInfoData), "NarSize: ", "NarSize: 1", 1))}, 400, "size mismatch"},
		{"narinfo whose references are missing", url, request{"PUT", helloInfo, bearer, helloInfoData}, 400, "not in the cache"},
		{"narinfo", url, request{"PUT", greetInfo, bearer, greetInfoData}, 201, ""},
		{"served signed", url, request{"GET", greetInfo, "", nil}, 200, "Sig: kix-test-1:"},
		{"other files", url, request{"PUT", "/log/x", bearer, []byte("x")}, 400, "only narinfos and NARs"},
		{"cache info", url, request{"PUT", "/nix-cache-info", bearer, []byte("StoreDir: /nix/store\n")}, 201, ""},
		{"cache info for another store", url, request{"PUT", "/nix-cache-info", bearer, []byte("StoreDir: /gnu/store\n")}, 400, "this cache is for /nix/store"},
		{"cache info without a store", url, request{"PUT", "/nix-cache-info", bearer, []byte("Priority: 10\n")}, 400, "this cache is for /nix/store"},
	}
	for _, s := range steps {
		code, body := do(t, s.url, s.req)
		if code != s.wantCode || !strings.Contains(body, s.wantBody) {
			t.Errorf("%s: %s %s: %d %q, want %d with %q", s.name, s.req.method, s.req.path, code, body, s.wantCode, s.wantBody)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*", ".upload-*"))
	top, _ := filepath.Glob(filepath.Join(dir, ".upload-*"))
	if left = append(left, top...); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if n := narinfoCount(t, dir); n != 1 {
		t.Errorf("cache holds %d narinfos, want 1 (hello-greeting)", n)
	}
	if brotli, _ := filepath.Glob(filepath.Join(dir, "nar", "*.br")); len(brotli) > 0 {
		t.Errorf("a refused NAR was kept: %v", brotli)
	}
}

// A folder is served only if its nix-cache-info, when it has one, is for
// /nix/store.
func TestFolderStoreDir(t *testing.T) {
	for _, tt := range []struct {
		name      string
		cacheInfo string // "" for none
		wantErr   string
	}{
		{name: "no nix-cache-info"},
		{name: "Nix store", cacheInfo: "StoreDir: /nix/store\n"},
		{name: "no StoreDir", cacheInfo: "WantMassQuery: 1\n"},
		{name: "another store", cacheInfo: "StoreDir: /gnu/store\n", wantErr: "is for store /gnu/store, not /nix/store"},
		{name: "malformed", cacheInfo: "StoreDir: /nix/store\nPriority: high\n", wantErr: "Priority"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.cacheInfo != "" {
				if err := os.WriteFile(filepath.Join(dir, "nix-cache-info"), []byte(tt.cacheInfo), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := New(Options{Dir: dir})
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("New: %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

// A path deleted from the store is not served on from memory.
func TestStoreForgetsDeletedPaths(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kix-cache-deleted")
	if err := os.WriteFile(file, []byte(t.Name()+time.Now().String()), 0o644); err != nil {
		t.Fatal(err)
	}
	path := fixture.AddToStore(t, file)
	url := serve(t, Options{Store: nix.NewLocalStore()})
	narinfo := request{method: "GET", path: "/" + nix.HashPart(path) + ".narinfo"}
	if code, body := do(t, url, narinfo); code != 200 {
		t.Fatalf("narinfo of %s: %d %s", path, code, body)
	}
	cmd := exec.Command("nix-store", "--delete", path)
	cmd.Env = fixture.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nix-store --delete: %v\n%s", err, out)
	}
	if code, body := do(t, url, narinfo); code != 404 {
		t.Errorf("narinfo of the deleted %s: %d %s, want 404", path, code, body)
	}
}

// A path deleted and built again with other contents (its build is not
// reproducible) is served with its new NAR hash, not the remembered one.
func TestStoreSeesPathsBuiltAgain(t *testing.T) {
	expr := `(import ` + filepath.Join(fixture.Dir(), "default.nix") + ` { }).lib.mkDerivation {
		pname = "kix-cache-rebuilt"; version = "1"; script = "head -c 32 /dev/urandom > $out"; }`
	build := func() string {
		cmd := exec.Command("nix-build", "--no-out-link", "-E", expr)
		cmd.Env = fixture.Env()
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("nix-build: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	path := build()
	url := serve(t, Options{Store: nix.NewLocalStore()})
	narinfo := request{method: "GET", path: "/" + nix.HashPart(path) + ".narinfo"}
	narHash := func() string {
		code, body := do(t, url, narinfo)
		if code != 200 {
			t.Fatalf("narinfo of %s: %d %s", path, code, body)
		}
		ni, err := nix.ParseNarinfo([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return ni.NarHash.Format(nixhash.NixBase32, true)
	}
	before := narHash()
	cmd := exec.Command("nix-store", "--delete", path)
	cmd.Env = fixture.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nix-store --delete: %v\n%s", err, out)
	}
	if again := build(); again != path {
		t.Fatalf("built again as %s, not %s", again, path)
	}
	if after := narHash(); after == before {
		t.Errorf("after the path was built again, the narinfo still gives its old NAR hash %s", before)
	}
}

// A folder's narinfo signed in the server key's name by another key (the
// key was replaced) is served signed by the server's key.
func TestFolderReplacesSignaturesThatDoNotVerify(t *testing.T) {
	hello := fixture.Build(t, "hello")
	src := fixture.NewBinaryCacheSigned(t, "none", fixture.NewSigningKey(t, "kix-test-1"), hello)
	key := newKey(t, "kix-test-1")
	url := serve(t, Options{Dir: src.Dir, SigningKey: key})
	code, body := do(t, url, request{method: "GET", path: "/" + nix.HashPart(hello) + ".narinfo"})
	if code != 200 {
		t.Fatalf("narinfo: %d %s", code, body)
	}
	ni, err := nix.ParseNarinfo([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if !key.Signed(ni) || len(ni.Signatures) != 1 {
		t.Errorf("the narinfo is not signed by the server's key alone:\n%s", body)
	}
}

// A server starting on a folder removes the uploads a stopped server left
// behind, and not the ones another server may still be receiving.
func TestFolderRemovesStaleUploads(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "nar"), 0o755); err != nil {
		t.Fatal(err)
	}
	stale, fresh := filepath.Join(dir, "nar", ".upload-1"), filepath.Join(dir, ".upload-2")
	for _, name := range []string{stale, fresh} {
		if err := os.WriteFile(name, []byte("part of an upload"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleUpload)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(stale); err == nil {
		t.Error("the stale upload is still there")
	}
	if _, err := os.Lstat(fresh); err != nil {
		t.Errorf("the fresh upload is gone: %v", err)
	}
}

// A folder's NARs are served with their size, in ranges (a resumed
// download), and as the file is.
func TestFolderNARRanges(t *testing.T) {
	hello := fixture.Build(t, "hello")
	src := fixture.NewBinaryCache(t, "none", hello)
	file := narFileOf(t, src.Dir, hello)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(src.Dir, file)
	url := serve(t, Options{Dir: src.Dir})
	get := func(method, rng string) (*http.Response, []byte) {
		t.Helper()
		var header map[string]string
		if rng != "" {
			header = map[string]string{"Range": rng}
		}
		return doRaw(t, url, request{method: method, path: "/" + rel}, header)
	}
	resp, body := get("GET", "")
	if resp.StatusCode != 200 || !bytes.Equal(body, data) || resp.Header.Get("Content-Type") != "application/x-nix-nar" {
		t.Errorf("GET %s: %s, %s, %d bytes, want 200 with the file's %d bytes", rel, resp.Status, resp.Header.Get("Content-Type"), len(body), len(data))
	}
	if resp, _ := get("HEAD", ""); resp.ContentLength != int64(len(data)) {
		t.Errorf("HEAD %s: Content-Length %d, want %d", rel, resp.ContentLength, len(data))
	}
	resp, body = get("GET", "bytes=100-")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[100:]) {
		t.Errorf("GET %s from byte 100: %s, %d bytes, want 206 with %d bytes", rel, resp.Status, len(body), len(data)-100)
	}
}

// An upload larger than what the server reads ahead is streamed to disk,
// up to the upload limit; a larger one is refused and leaves nothing.
func TestLargeUploads(t *testing.T) {
	dir := t.TempDir()
	const limit = 3 << 20
	url := serve(t, Options{Dir: dir, UploadToken: "tok", MaxUploadSize: limit})
	put := func(size int) (int, string, string) {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 7919 >> 8)
		}
		sum := sha256.Sum256(data)
		name := "nar/" + nixbase32.EncodeToString(sum[:]) + ".nar"
		code, body := do(t, url, request{"PUT", "/" + name, "Bearer tok", data})
		return code, body, name
	}
	code, body, name := put(limit)
	if code != http.StatusCreated {
		t.Fatalf("PUT of %d bytes: %d %s", limit, code, body)
	}
	if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() != limit {
		t.Errorf("uploaded %s: %v, want %d bytes", name, err, limit)
	}
	if code, body, name = put(limit + 1); code != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT of %d bytes over a %d-byte limit: %d %s, want 413", limit+1, limit, code, body)
	}
	if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
		t.Errorf("the refused %s was kept", name)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "nar", ".upload-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
