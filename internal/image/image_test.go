package image

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/test/fixture"
	"github.com/kix-project/kix/test/storetest"
)

func newBuilder(t *testing.T, store nix.Store) *Builder {
	t.Helper()
	cache, err := OpenBlobCache(t.TempDir(), DefaultCacheBytes)
	if err != nil {
		t.Fatal(err)
	}
	return &Builder{Store: store, Cache: cache, System: "x86_64-linux"}
}

func build(t *testing.T, b *Builder, path string) *Artifact {
	t.Helper()
	a, err := b.Build(context.Background(), path)
	if err != nil {
		t.Fatalf("Build(%s): %v", path, err)
	}
	return a
}

// validateArtifact runs go-containerregistry's validation over every
// manifest flavour of an artifact. validate.Layer only reads gzip, so other
// compressions get its fast checks plus a digest and diff ID check here.
func validateArtifact(t *testing.T, b *Builder, a *Artifact) {
	t.Helper()
	for _, docker := range []bool{false, true} {
		img, idx, err := a.V1(b.Cache, docker)
		if err != nil {
			t.Fatal(err)
		}
		var opts []validate.Option
		if b.compression() != Gzip {
			opts = append(opts, validate.Fast)
		}
		if img != nil {
			err = validate.Image(img, opts...)
			checkLayers(t, img)
		} else {
			err = validate.Index(idx, opts...)
		}
		if err != nil {
			t.Errorf("validate (docker=%v): %v", docker, err)
		}
	}
}

func checkLayers(t *testing.T, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		for _, c := range []struct {
			what string
			open func() (io.ReadCloser, error)
			want func() (v1.Hash, error)
		}{{"digest", l.Compressed, l.Digest}, {"diff ID", l.Uncompressed, l.DiffID}} {
			rc, err := c.open()
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := v1.SHA256(rc)
			rc.Close()
			want, _ := c.want()
			if err != nil || got != want {
				t.Errorf("layer %d: %s is %s, content hashes to %s (%v)", i, c.what, want, got, err)
			}
		}
	}
}

func TestPackageImage(t *testing.T) {
	hello := fixture.Build(t, "hello")
	b := newBuilder(t, nix.NewLocalStore())
	a := build(t, b, hello)
	validateArtifact(t, b, a)
	img := a.Image
	if img == nil {
		t.Fatal("a package should give an image, not an index")
	}
	if len(img.Layers) != 3 {
		t.Errorf("%d layers, want one per path of the 3-path closure", len(img.Layers))
	}
	cf := configOf(t, img)
	if diff := cmp.Diff([]string{hello + "/bin/hello"}, cf.Config.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	if !slices.Contains(cf.Config.Env, "PATH="+hello+"/bin") {
		t.Errorf("env %v lacks PATH=%s/bin", cf.Config.Env, hello)
	}
	if cf.Architecture != "amd64" || cf.OS != "linux" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if cf.Config.Labels[RootsLabel] != hello {
		t.Errorf("label %s = %q", RootsLabel, cf.Config.Labels[RootsLabel])
	}
}

func configOf(t *testing.T, img *Image) *v1.ConfigFile {
	t.Helper()
	cf, err := v1.ParseConfigFile(strings.NewReader(string(img.Config)))
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

// The layers hold exactly the closure, with store permissions.
func TestLayersHoldExactlyTheClosure(t *testing.T) {
	hello := fixture.Build(t, "hello")
	b := newBuilder(t, nix.NewLocalStore())
	b.Layers = 2
	a := build(t, b, hello)
	if len(a.Image.Layers) != 2 {
		t.Fatalf("%d layers, want 2", len(a.Image.Layers))
	}
	entries := map[string]*tar.Header{}
	roots := map[string]bool{}
	img, _, _ := a.V1(b.Cache, false)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name != "nix/" && h.Name != "nix/store/" {
				if _, dup := entries[h.Name]; dup {
					t.Errorf("%s is in two layers", h.Name)
				}
				roots["/"+strings.Join(strings.SplitN(strings.TrimSuffix(h.Name, "/"), "/", 4)[:3], "/")] = true
			}
			entries[h.Name] = h
		}
		rc.Close()
	}
	want := fixture.Closure(t, hello)
	got := slices.Sorted(maps.Keys(roots))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("store paths in the layers (-closure +layers):\n%s", diff)
	}
	prog := entries["nix/store/"+nix.BaseName(hello)+"/bin/hello"]
	if prog == nil || prog.Mode != 0o555 || prog.Uid != 0 || prog.ModTime.Unix() != 1 {
		t.Errorf("bin/hello header: %+v", prog)
	}
	greeting := fixture.Closure(t, hello)[0] // hello-greeting sorts first
	data := entries["nix/store/"+nix.BaseName(greeting)+"/share/hello/greeting.txt"]
	if data == nil || data.Mode != 0o444 {
		t.Errorf("greeting.txt header: %+v", data)
	}
}

// The same closure gives the same digests, whatever the cache state, for
// every compression.
func TestImagesAreDeterministic(t *testing.T) {
	hello := fixture.Build(t, "hello")
	for _, c := range []Compression{Gzip, Zstd, None} {
		t.Run(string(c), func(t *testing.T) {
			var digests []v1.Hash
			for i := 0; i < 2; i++ {
				b := newBuilder(t, nix.NewLocalStore())
				b.Compression = c
				a := build(t, b, hello)
				validateArtifact(t, b, a)
				digests = append(digests, a.Image.OCI.Digest)
			}
			if digests[0] != digests[1] {
				t.Errorf("two fresh builds gave %s and %s", digests[0], digests[1])
			}
		})
	}
}

func TestZstdImagesHaveNoDockerManifest(t *testing.T) {
	hello := fixture.Build(t, "hello")
	b := newBuilder(t, nix.NewLocalStore())
	b.Compression = Zstd
	a := build(t, b, hello)
	if a.Image.Docker != nil {
		t.Error("Docker schema 2 has no zstd layer type; want no Docker manifest")
	}
	if got := a.Manifest(true); got.Digest != a.Image.OCI.Digest {
		t.Error("a Docker client should get the OCI manifest when there is no Docker one")
	}
}

func TestImageSpec(t *testing.T) {
	hello := fixture.Build(t, "hello")
	spec := fixture.Build(t, "helloImageSpec")
	b := newBuilder(t, nix.NewLocalStore())
	a := build(t, b, spec)
	validateArtifact(t, b, a)
	cf := configOf(t, a.Image)
	got := cf.Config
	if diff := cmp.Diff([]string{hello + "/bin/hello"}, got.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"--linger"}, got.Cmd); diff != "" {
		t.Errorf("cmd (-want +got):\n%s", diff)
	}
	wantEnv := []string{"GREETING_FROM=kix", "PATH=" + hello + "/bin"}
	if diff := cmp.Diff(wantEnv, got.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if got.User != "0:0" || got.WorkingDir != "/" || got.Labels["org.opencontainers.image.title"] != "hello" {
		t.Errorf("config %+v", got)
	}
	// The spec's image holds hello's closure, not the spec file.
	if diff := cmp.Diff([]string{hello}, a.Image.Roots); diff != "" {
		t.Errorf("roots (-want +got):\n%s", diff)
	}
}

func TestMultiSystemSpecGivesAnIndex(t *testing.T) {
	spec := fixture.Build(t, "helloMultiSystemImageSpec")
	b := newBuilder(t, nix.NewLocalStore())
	a := build(t, b, spec)
	validateArtifact(t, b, a)
	if a.Index == nil {
		t.Fatal("want an index")
	}
	var platforms []string
	for _, img := range a.Index.Images {
		platforms = append(platforms, img.Platform.String())
	}
	if diff := cmp.Diff([]string{"linux/arm64/v8", "linux/amd64"}, platforms); diff != "" {
		t.Errorf("platforms (-want +got):\n%s", diff)
	}
	for _, img := range a.Index.Images {
		if _, ok := a.ManifestByDigest(img.OCI.Digest); !ok {
			t.Errorf("platform manifest %s not found by digest", img.OCI.Digest)
		}
	}
}

func TestConcurrentBuildsShareWork(t *testing.T) {
	hello := fixture.Build(t, "hello")
	store := storetest.NewCounting(nix.NewLocalStore())
	b := newBuilder(t, store)
	var wg sync.WaitGroup
	digests := make([]v1.Hash, 20)
	for i := range digests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := b.Build(context.Background(), hello)
			if err != nil {
				t.Error(err)
				return
			}
			digests[i] = a.Image.OCI.Digest
		}()
	}
	wg.Wait()
	for _, d := range digests[1:] {
		if d != digests[0] {
			t.Fatalf("concurrent builds disagree: %s vs %s", d, digests[0])
		}
	}
	for _, p := range fixture.Closure(t, hello) {
		// hello itself is read twice: once to classify it and list bin/,
		// once for its layer. Every other path once, for its layer.
		want := 1
		if p == hello {
			want = 2
		}
		if got := store.Reads(p); got != want {
			t.Errorf("%s read %d times, want %d", p, got, want)
		}
	}

	// A second builder on the same cache reuses the layers without reading.
	before := store.Total()
	b2 := &Builder{Store: store, Cache: b.Cache, System: "x86_64-linux"}
	if a := build(t, b2, hello); a.Image.OCI.Digest != digests[0] {
		t.Errorf("rebuild from cache gave %s, want %s", a.Image.OCI.Digest, digests[0])
	}
	if reads := store.Total() - before; reads != 1 {
		t.Errorf("a rebuild from a warm cache read store files %d times, want 1 (classify and bin/)", reads)
	}
}

// An artifact whose layer the cache evicted is assembled again, with only
// that layer rebuilt.
func TestBuildAfterEviction(t *testing.T) {
	hello := fixture.Build(t, "hello")
	b := newBuilder(t, nix.NewLocalStore())
	a := build(t, b, hello)
	if again := build(t, b, hello); again != a {
		t.Error("a second Build assembled the artifact again with every blob cached")
	}
	evicted := a.Image.Layers[0].Digest
	b.Cache.forget(evicted) // as evictLocked does
	if err := os.Remove(b.Cache.path(evicted)); err != nil {
		t.Fatal(err)
	}
	before := b.Stats()
	again := build(t, b, hello)
	if again.Image.OCI.Digest != a.Image.OCI.Digest {
		t.Errorf("rebuilt image is %s, was %s", again.Image.OCI.Digest, a.Image.OCI.Digest)
	}
	if _, ok := b.Cache.Stat(evicted); !ok {
		t.Errorf("layer %s is still not cached after Build", evicted)
	}
	after := b.Stats()
	if got := after.Artifacts - before.Artifacts; got != 1 {
		t.Errorf("%d artifacts assembled, want 1", got)
	}
	if got := after.LayersBuilt - before.LayersBuilt; got != 1 {
		t.Errorf("%d layers built, want only the evicted one", got)
	}
	validateArtifact(t, b, again)
}

// An image larger than the layer cache is refused with the reason, not
// made again on every pull as its last layers evict its first.
func TestImageLargerThanTheCache(t *testing.T) {
	hello := fixture.Build(t, "hello")
	whole := build(t, newBuilder(t, nix.NewLocalStore()), hello).cachedSize()
	for _, bound := range []int64{whole - 1, 1} {
		b := newBuilder(t, nix.NewLocalStore())
		b.Cache.maxBytes = bound
		_, err := b.Build(context.Background(), hello)
		if err == nil || !strings.Contains(err.Error(), hello) || !errors.Is(err, ErrCacheTooSmall) || !strings.Contains(err.Error(), "--cache-size") {
			t.Errorf("Build with a cache of %d bytes for an image of %d: %v", bound, whole, err)
		}
	}
	b := newBuilder(t, nix.NewLocalStore())
	b.Cache.maxBytes = whole
	validateArtifact(t, b, build(t, b, hello))
}

func TestNotFound(t *testing.T) {
	b := newBuilder(t, nix.NewLocalStore())
	_, err := b.Build(context.Background(), "/nix/store/00000000000000000000000000000000-missing")
	if !errors.Is(err, nix.ErrNotFound) {
		t.Errorf("Build of a missing path: %v, want ErrNotFound", err)
	}
	if _, err := b.Build(context.Background(), "/etc/passwd"); err == nil {
		t.Error("Build of a path outside the store succeeded")
	}
}

func TestBuildSpec(t *testing.T) {
	hello := fixture.Build(t, "hello")
	busybox := fixture.Build(t, "busybox")
	spec, err := BuildSpec(context.Background(), PackageRequest{
		Name: "tools", PackageSet: fixture.Dir(), Contents: []string{"hello", "busybox"},
		Config: Config{Cmd: []string{"sh"}, Env: map[string]string{"GREETING": "hi"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := newBuilder(t, nix.NewLocalStore())
	b.System = CurrentSystem()
	a := build(t, b, spec)
	validateArtifact(t, b, a)
	cf := configOf(t, a.Image)
	if want := "PATH=" + hello + "/bin:" + busybox + "/bin"; !slices.Contains(cf.Config.Env, want) || !slices.Contains(cf.Config.Env, "GREETING=hi") {
		t.Errorf("env %v", cf.Config.Env)
	}
	if diff := cmp.Diff([]string{hello, busybox}, a.Image.Roots); diff != "" {
		t.Errorf("roots (-want +got):\n%s", diff)
	}

	// One package with one program: that is the entrypoint.
	one, err := BuildSpec(context.Background(), PackageRequest{Name: "hello", PackageSet: fixture.Dir(), Contents: []string{"hello"}})
	if err != nil {
		t.Fatal(err)
	}
	if cf := configOf(t, build(t, b, one).Image); !slices.Equal(cf.Config.Entrypoint, []string{hello + "/bin/hello"}) {
		t.Errorf("entrypoint %v", cf.Config.Entrypoint)
	}

	// A name longer than a store path's (a NixImage's namespace and name)
	// still gives a spec, and two such names give two specs.
	long := strings.Repeat("n", 253)
	var specs []string
	for _, name := range []string{long + "-a", long + "-b"} {
		p, err := BuildSpec(context.Background(), PackageRequest{Name: name, PackageSet: fixture.Dir(), Contents: []string{"hello"}})
		if err != nil {
			t.Fatalf("a long name: %v", err)
		}
		specs = append(specs, p)
	}
	if specs[0] == specs[1] || !strings.HasSuffix(specs[0], "-image-spec.json") {
		t.Errorf("specs of two long names: %q", specs)
	}

	_, err = BuildSpec(context.Background(), PackageRequest{Name: "x", PackageSet: fixture.Dir(), Contents: []string{"no-such-package"}})
	if !errors.Is(err, nix.ErrUnknownAttribute) || !strings.Contains(err.Error(), "no-such-package") {
		t.Errorf("missing package: %v", err)
	}
	if _, err := BuildSpec(context.Background(), PackageRequest{Name: "x", PackageSet: fixture.Dir(), Contents: []string{"hello"}, Systems: []string{"riscv64-linux"}}); err == nil {
		t.Error("a system this machine does not build was accepted")
	}
}
