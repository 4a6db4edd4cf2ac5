package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kix-project/kix/internal/image"
	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/test/fixture"
	"github.com/kix-project/kix/test/storetest"
)

// testRegistry is a registry over a store, served by httptest.
type testRegistry struct {
	*httptest.Server
	builder *image.Builder
	host    string // 127.0.0.1:PORT
}

func newRegistry(t *testing.T, store nix.Store, configure ...func(*Options)) *testRegistry {
	t.Helper()
	cache, err := image.OpenBlobCache(t.TempDir(), image.DefaultCacheBytes)
	if err != nil {
		t.Fatal(err)
	}
	b := &image.Builder{Store: store, Cache: cache, System: "x86_64-linux"}
	opts := Options{Builder: b, ErrorLog: func(msg string, err error) { t.Logf("%s: %v", msg, err) }}
	for _, c := range configure {
		c(&opts)
	}
	srv := httptest.NewServer(New(opts))
	t.Cleanup(srv.Close)
	return &testRegistry{Server: srv, builder: b, host: strings.TrimPrefix(srv.URL, "http://")}
}

func (r *testRegistry) ref(t *testing.T, repo string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(r.host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// get makes a raw request and returns status, headers and body.
func (r *testRegistry) get(t *testing.T, method, path string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, r.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

func TestPullWithGoContainerRegistry(t *testing.T) {
	hello := fixture.Build(t, "hello")
	reg := newRegistry(t, nix.NewLocalStore())
	var digests []v1.Hash
	for _, repo := range []string{
		nix.BaseName(hello) + ":latest",
		nix.BaseName(hello) + ":any-tag.1",
		nix.HashPart(hello) + ":latest",
		nix.BaseName(hello) + ":" + nix.HashPart(hello),
	} {
		img, err := remote.Image(reg.ref(t, repo))
		if err != nil {
			t.Fatalf("pulling %s: %v", repo, err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("%s: %v", repo, err)
		}
		d, _ := img.Digest()
		digests = append(digests, d)
	}
	for _, d := range digests[1:] {
		if d != digests[0] {
			t.Errorf("names of one store path served different images: %v", digests)
		}
	}
}

func TestPullSpecsAndIndexes(t *testing.T) {
	reg := newRegistry(t, nix.NewLocalStore())
	spec := fixture.Build(t, "helloImageSpec")
	img, err := remote.Image(reg.ref(t, Repository(spec)))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Error(err)
	}
	multi := fixture.Build(t, "helloMultiSystemImageSpec")
	idx, err := remote.Index(reg.ref(t, Repository(multi)))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Error(err)
	}
	// A client asking for its platform gets that platform's image.
	arm, err := remote.Image(reg.ref(t, Repository(multi)), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatal(err)
	}
	if cf, _ := arm.ConfigFile(); cf.Architecture != "arm64" {
		t.Errorf("asked for arm64, got %s", cf.Architecture)
	}
}

func TestContentNegotiation(t *testing.T) {
	hello := fixture.Build(t, "hello")
	reg := newRegistry(t, nix.NewLocalStore())
	path := "/v2/" + nix.BaseName(hello) + "/manifests/latest"
	for _, tt := range []struct {
		accept string
		want   types.MediaType
	}{
		{"", types.OCIManifestSchema1},
		{"*/*", types.OCIManifestSchema1},
		{string(types.DockerManifestSchema2), types.DockerManifestSchema2},
		{string(types.OCIManifestSchema1), types.OCIManifestSchema1},
		{string(types.DockerManifestSchema2) + ", " + string(types.OCIManifestSchema1), types.OCIManifestSchema1},
	} {
		status, h, body := reg.get(t, http.MethodGet, path, map[string]string{"Accept": tt.accept})
		if status != 200 || types.MediaType(h.Get("Content-Type")) != tt.want {
			t.Errorf("Accept %q: %d %s, want 200 %s", tt.accept, status, h.Get("Content-Type"), tt.want)
		}
		sum := sha256.Sum256(body)
		if got := "sha256:" + hex.EncodeToString(sum[:]); h.Get("Docker-Content-Digest") != got {
			t.Errorf("Accept %q: Docker-Content-Digest %s, body hashes to %s", tt.accept, h.Get("Docker-Content-Digest"), got)
		}
		// HEAD answers the same headers without a body.
		hs, hh, hb := reg.get(t, http.MethodHead, path, map[string]string{"Accept": tt.accept})
		if hs != 200 || hh.Get("Docker-Content-Digest") != h.Get("Docker-Content-Digest") || len(hb) != 0 {
			t.Errorf("HEAD with Accept %q: %d %s, %d body bytes", tt.accept, hs, hh.Get("Docker-Content-Digest"), len(hb))
		}
	}
}

// The same store path served from the local store and from a binary cache
// of it (no Nix involved) is the same image, digest for digest.
func TestLocalStoreAndBinaryCacheServeTheSameImage(t *testing.T) {
	hello := fixture.Build(t, "hello")
	local := newRegistry(t, nix.NewLocalStore())
	bc := fixture.NewBinaryCache(t, "xz", hello)
	cache, err := nix.NewBinaryCache(bc.URL(), nix.BinaryCacheOptions{TrustedKeys: []string{bc.Key.Public}})
	if err != nil {
		t.Fatal(err)
	}
	remoteReg := newRegistry(t, cache)
	for _, repo := range []string{nix.BaseName(hello), nix.HashPart(hello)} {
		a, err := remote.Image(local.ref(t, repo))
		if err != nil {
			t.Fatal(err)
		}
		b, err := remote.Image(remoteReg.ref(t, repo))
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(b); err != nil {
			t.Error(err)
		}
		da, _ := a.Digest()
		db, _ := b.Digest()
		if da != db {
			t.Errorf("%s: local store serves %s, binary cache %s", repo, da, db)
		}
	}
}

// A binary cache that lies is refused: nothing of the image is served.
func TestCorruptBinaryCacheIsRefused(t *testing.T) {
	hello := fixture.Build(t, "hello")
	bc := fixture.NewBinaryCache(t, "none", hello)
	wrongKey := fixture.NewSigningKey(t, "test-cache-1") // the right name, another key
	for _, tt := range []struct {
		name    string
		key     string
		corrupt func(t *testing.T)
		wantErr string
	}{
		{"signed by an untrusted key", wrongKey.Public, func(*testing.T) {}, "no valid signature"},
		{"NAR altered", bc.Key.Public, func(t *testing.T) { corruptNAR(t, bc, hello) }, "NAR hash mismatch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.corrupt(t)
			cache, err := nix.NewBinaryCache(bc.URL(), nix.BinaryCacheOptions{TrustedKeys: []string{tt.key}})
			if err != nil {
				t.Fatal(err)
			}
			reg := newRegistry(t, cache)
			status, _, body := reg.get(t, http.MethodGet, "/v2/"+nix.BaseName(hello)+"/manifests/latest", nil)
			if status != http.StatusBadGateway || !strings.Contains(string(body), tt.wantErr) {
				t.Errorf("got %d %s, want 502 mentioning %q", status, body, tt.wantErr)
			}
			if n := reg.builder.Cache.Size(); n != 0 {
				t.Errorf("the layer cache holds %d bytes after a refused build", n)
			}
		})
	}
}

func corruptNAR(t *testing.T, bc *fixture.BinaryCache, path string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(bc.Dir, nix.HashPart(path)+".narinfo"))
	if err != nil {
		t.Fatal(err)
	}
	var url string
	for _, line := range strings.Split(string(data), "\n") {
		if u, ok := strings.CutPrefix(line, "URL: "); ok {
			url = u
		}
	}
	nar := filepath.Join(bc.Dir, url)
	content, err := os.ReadFile(nar)
	if err != nil {
		t.Fatal(err)
	}
	content[len(content)-20] ^= 0xff
	if err := os.WriteFile(nar, content, 0o644); err != nil {
		t.Fatal(err)
	}
}

type errorResponse struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

func TestTagsAndReferrers(t *testing.T) {
	hello := fixture.Build(t, "hello")
	reg := newRegistry(t, nix.NewLocalStore())
	tags, err := remote.List(reg.ref(t, nix.BaseName(hello)).Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"latest"}, tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	img, err := remote.Image(reg.ref(t, nix.BaseName(hello)))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	status, h, body := reg.get(t, "GET", "/v2/"+nix.BaseName(hello)+"/referrers/"+d.String(), nil)
	if status != 200 || types.MediaType(h.Get("Content-Type")) != types.OCIImageIndex {
		t.Errorf("referrers: %d %s %s", status, h.Get("Content-Type"), body)
	}
}

// containerd adds ?ns=<registry> to mirrored requests; it changes nothing.
func TestNamespaceQueryIsIgnored(t *testing.T) {
	hello := fixture.Build(t, "hello")
	reg := newRegistry(t, nix.NewLocalStore())
	status, _, _ := reg.get(t, "GET", "/v2/"+nix.BaseName(hello)+"/manifests/latest?ns=nix.internal", nil)
	if status != 200 {
		t.Errorf("status %d", status)
	}
}

func TestPackages(t *testing.T) {
	hello := fixture.Build(t, "hello")
	busybox := fixture.Build(t, "busybox")
	reg := newRegistry(t, nix.NewLocalStore(), func(o *Options) {
		o.Packages = &nix.PackageSet{Ref: fixture.Dir()}
	})
	img, err := remote.Image(reg.ref(t, "pkgs/hello/busybox:latest"))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Error(err)
	}
	cf, _ := img.ConfigFile()
	if want := "PATH=" + busybox + "/bin:" + hello + "/bin"; !slices.Contains(cf.Config.Env, want) {
		t.Errorf("env %v lacks %s (packages sorted by name)", cf.Config.Env, want)
	}
	// Order and repetition do not change the image.
	again, err := remote.Image(reg.ref(t, "pkgs/busybox/hello/busybox:v2"))
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("pkgs/hello/busybox is %s, pkgs/busybox/hello/busybox %s", d1, d2)
	}
	// Pulling it whole (manifest, config, every layer) assembles it once.
	if err := validate.Image(again); err != nil {
		t.Error(err)
	}
	if n := reg.builder.Stats().Artifacts; n != 1 {
		t.Errorf("the packages' image was assembled %d times, want once", n)
	}
	status, _, body := reg.get(t, "GET", "/v2/pkgs/hello/no-such-package/manifests/latest", nil)
	if status != 404 || !strings.Contains(string(body), "no-such-package") {
		t.Errorf("unknown package: %d %s", status, body)
	}
}

// changingSet is the fixture package set, changed under the registry:
// once changed, every package name builds busybox; once failing, nothing
// evaluates.
type changingSet struct {
	set              *nix.PackageSet
	changed, failing atomic.Bool
}

func (c *changingSet) Build(ctx context.Context, attrs []string) ([]string, error) {
	if c.failing.Load() {
		return nil, errors.New("the package set does not evaluate")
	}
	if c.changed.Load() {
		attrs = []string{"busybox"}
	}
	return c.set.Build(ctx, attrs)
}

// A pull that began before the package set changed under its pkgs/ name
// gets the image it began: the manifest and blobs it names by digest,
// while the tag gives the new image, and while the set fails to evaluate.
func TestPackagesChangedDuringAPull(t *testing.T) {
	fixture.Build(t, "hello")
	fixture.Build(t, "busybox")
	set := &changingSet{set: &nix.PackageSet{Ref: fixture.Dir()}}
	reg := newRegistry(t, nix.NewLocalStore(), func(o *Options) {
		o.Packages = set
		o.PackagesTTL = time.Nanosecond // the set is evaluated again on every request that needs it
	})
	began, err := remote.Image(reg.ref(t, "pkgs/hello:latest"))
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := began.Digest()
	set.changed.Store(true)
	if err := validate.Image(began); err != nil {
		t.Errorf("pulling the image resolved before the set changed: %v", err)
	}
	now, err := remote.Image(reg.ref(t, "pkgs/hello:latest"))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := now.Digest(); d == digest {
		t.Error("the tag still gives the image of before the set changed")
	}
	pullByDigest := func(when string) {
		t.Helper()
		img, err := remote.Image(reg.ref(t, "pkgs/hello@"+digest.String()))
		if err != nil {
			t.Fatalf("%s, the image of before the set changed, by digest: %v", when, err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("%s, pulling the image of before the set changed: %v", when, err)
		}
	}
	pullByDigest("once the tag moved")
	set.failing.Store(true)
	pullByDigest("while the set fails")
	if _, err := remote.Image(reg.ref(t, "pkgs/hello:latest")); err == nil || !strings.Contains(err.Error(), "does not evaluate") {
		t.Errorf("the tag while the set fails: %v", err)
	}
}

// Fifty clients pulling one image from a cold registry at once get one
// image, and each layer is built once.
func TestConcurrentColdPulls(t *testing.T) {
	hello := fixture.Build(t, "hello")
	store := storetest.NewCounting(nix.NewLocalStore())
	reg := newRegistry(t, store)
	var wg sync.WaitGroup
	digests := make([]v1.Hash, 50)
	for i := range digests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := remote.Image(reg.ref(t, nix.BaseName(hello)))
			if err != nil {
				t.Error(err)
				return
			}
			if err := validate.Image(img, validate.Fast); err != nil {
				t.Error(err)
			}
			digests[i], _ = img.Digest()
		}()
	}
	wg.Wait()
	for _, d := range digests {
		if d != digests[0] {
			t.Fatalf("pulls disagree: %v", digests)
		}
	}
	for _, p := range fixture.Closure(t, hello) {
		want := 1
		if p == hello {
			want = 2 // classified and bin/ listed, then layered
		}
		if got := store.Reads(p); got != want {
			t.Errorf("%s read %d times, want %d", p, got, want)
		}
	}
}

func TestBaseEndpoint(t *testing.T) {
	reg := newRegistry(t, nix.NewLocalStore())
	status, h, body := reg.get(t, "GET", "/v2/", nil)
	if status != 200 || h.Get("Docker-Distribution-API-Version") != "registry/2.0" || string(body) != "{}" {
		t.Errorf("/v2/: %d %v %s", status, h, body)
	}
}
