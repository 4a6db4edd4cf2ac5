package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nix-community/go-nix/pkg/nar"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/kix-project/kix/internal/flight"
	"github.com/kix-project/kix/internal/nix"
)

// Builder assembles images from store paths into a BlobCache.
type Builder struct {
	Store       nix.Store
	Cache       *BlobCache
	Layers      int         // layer budget; DefaultLayers if 0
	Compression Compression // Gzip if empty
	// System is the Nix system plain store paths are built for
	// ("x86_64-linux"); the machine's own if empty.
	System string

	flights   singleflight.Group
	artifacts sync.Map // store path -> *Artifact
	stats     stats
}

// Stats count what a Builder did, for metrics.
type Stats struct {
	LayersBuilt  int64 // layers written to the cache
	LayerBytes   int64 // compressed bytes of those layers
	LayersReused int64 // layers found in the cache
	Artifacts    int64 // artifacts assembled
}

type stats struct {
	layersBuilt, layerBytes, layersReused, artifacts atomic.Int64
}

// Stats returns the builder's counters.
func (b *Builder) Stats() Stats {
	return Stats{
		LayersBuilt:  b.stats.layersBuilt.Load(),
		LayerBytes:   b.stats.layerBytes.Load(),
		LayersReused: b.stats.layersReused.Load(),
		Artifacts:    b.stats.artifacts.Load(),
	}
}

// LayerFormat versions the layer recipe: bump it when the bytes a layer is
// made of change, so cached layers from older kix are not reused.
const LayerFormat = "kix-layer-v1"

// CurrentSystem is the Nix system of this machine.
func CurrentSystem() string {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "riscv64": "riscv64",
		"ppc64le": "powerpc64le", "s390x": "s390x", "arm": "armv7l"}[runtime.GOARCH]
	return arch + "-linux"
}

func (b *Builder) layers() int {
	if b.Layers <= 0 {
		return DefaultLayers
	}
	return b.Layers
}

func (b *Builder) compression() Compression {
	if b.Compression == "" {
		return Gzip
	}
	return b.Compression
}

// SystemOrDefault is the Nix system images are made for by default.
func (b *Builder) SystemOrDefault() string {
	if b.System == "" {
		return CurrentSystem()
	}
	return b.System
}

// Build returns the artifact a store path serves (see the package doc),
// assembling it the first time, and again if the cache has since evicted
// any of its blobs. Concurrent calls for one path share the work.
func (b *Builder) Build(ctx context.Context, storePath string) (*Artifact, error) {
	return b.remember(ctx, storePath, func(ctx context.Context) (*Artifact, error) { return b.build(ctx, storePath) })
}

// BuildPackages returns the image of packages together, in this order (as
// a package's image is made: DefaultConfig), assembling it the first time,
// as Build does.
func (b *Builder) BuildPackages(ctx context.Context, roots []string) (*Artifact, error) {
	return b.remember(ctx, "packages\x00"+strings.Join(roots, "\x00"), func(ctx context.Context) (*Artifact, error) {
		img, err := b.packageImage(ctx, roots)
		if err != nil {
			return nil, err
		}
		return &Artifact{Image: img}, nil
	})
}

// remember returns the artifact remembered under key, or makes it with
// build, once for concurrent callers (see flight.Do: one client going away
// does not fail the others), and remembers it. An artifact whose blobs are
// no longer all cached is made again.
func (b *Builder) remember(ctx context.Context, key string, build func(context.Context) (*Artifact, error)) (*Artifact, error) {
	if a, ok := b.remembered(key); ok {
		return a, nil
	}
	return flight.Do(ctx, &b.flights, "artifact\x00"+key, func(ctx context.Context) (*Artifact, error) {
		a, err := build(ctx)
		if err != nil {
			return nil, err
		}
		if err := b.fits(a); err != nil {
			return nil, err
		}
		b.stats.artifacts.Add(1)
		b.artifacts.Store(key, a)
		return a, nil
	})
}

// ErrCacheTooSmall is the reason for refusing an image larger than the
// layer cache.
var ErrCacheTooSmall = errors.New("raise --cache-size")

// fits refuses an artifact that was just made if the cache has already
// let some of its blobs go because they all take more than it holds: its
// last layers evicted its first, and every pull would make it again, and
// fail. An artifact that fits but lost a blob to other work meanwhile is
// fine: serving that blob makes it again.
func (b *Builder) fits(a *Artifact) error {
	size := a.cachedSize()
	if size <= b.Cache.maxBytes {
		return nil
	}
	for _, d := range a.Blobs() {
		if _, ok := b.Cache.Stat(d); !ok {
			name := a.StorePath
			if name == "" && a.Image != nil {
				name = strings.Join(a.Image.Roots, " ") // packages together
			}
			return fmt.Errorf("%s: the image's layers, configs and manifests take %d bytes, more than the layer cache's bound of %d: %w", name, size, b.Cache.maxBytes, ErrCacheTooSmall)
		}
	}
	return nil
}

// remembered returns the artifact remembered under key if the cache still
// holds every blob it names.
func (b *Builder) remembered(key string) (*Artifact, bool) {
	v, ok := b.artifacts.Load(key)
	if !ok {
		return nil, false
	}
	a := v.(*Artifact)
	for _, d := range a.Blobs() {
		if _, ok := b.Cache.Stat(d); !ok {
			return nil, false
		}
	}
	return a, true
}

// packageImage is the image of packages: their closure, with the default
// configuration.
func (b *Builder) packageImage(ctx context.Context, roots []string) (*Image, error) {
	cfg, err := DefaultConfig(ctx, b.Store, roots)
	if err != nil {
		return nil, err
	}
	return b.BuildRoots(ctx, roots, cfg, b.SystemOrDefault())
}

func (b *Builder) build(ctx context.Context, storePath string) (*Artifact, error) {
	if _, err := nix.ParseStorePath(storePath); err != nil {
		return nil, err
	}
	// One read tells what the path is and, for a package, what bin/ holds.
	files, err := nix.Files(ctx, b.Store, storePath)
	if err != nil {
		return nil, err
	}
	kind, content, err := classify(files, storePath)
	var programs []string
	if err == nil && kind == kindPackage {
		programs, err = programsIn(files, storePath)
	}
	files.Close()
	if err != nil {
		return nil, err
	}
	switch kind {
	case kindSpec:
		spec, err := ParseSpec(content)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", storePath, err)
		}
		return b.fromSpec(ctx, storePath, spec)
	case kindArchive:
		return b.fromArchive(ctx, storePath)
	}
	roots := []string{storePath}
	img, err := b.BuildRoots(ctx, roots, defaultConfig(roots, programs), b.SystemOrDefault())
	if err != nil {
		return nil, err
	}
	return &Artifact{StorePath: storePath, Image: img}, nil
}

type pathKind int

const (
	kindPackage pathKind = iota
	kindSpec
	kindArchive
)

// classify tells a package from an image spec or an image archive by the
// first entry of a store path's files, and returns a spec's content. An
// image spec is a small JSON file; an archive is a file named .tar, .tar.gz
// or .tgz.
func classify(files nix.FileReader, storePath string) (pathKind, []byte, error) {
	h, err := files.Next()
	if err != nil {
		return 0, nil, fmt.Errorf("reading %s: %w", storePath, err)
	}
	name := nix.NamePart(storePath)
	switch {
	case h.Type != nar.TypeRegular:
		return kindPackage, nil, nil
	case strings.HasSuffix(name, ".tar") || strings.HasSuffix(name, ".tar.gz") || strings.HasSuffix(name, ".tgz"):
		return kindArchive, nil, nil
	case strings.HasSuffix(name, ".json") && h.Size <= maxSpecSize:
		content, err := io.ReadAll(io.LimitReader(files, maxSpecSize))
		if err != nil {
			return 0, nil, err
		}
		if isSpec(content) {
			return kindSpec, content, nil
		}
	}
	return kindPackage, nil, nil
}

// BuildRoots assembles the image of roots' closure for a Nix system.
func (b *Builder) BuildRoots(ctx context.Context, roots []string, cfg Config, system string) (*Image, error) {
	platform, err := platformOf(system)
	if err != nil {
		return nil, err
	}
	closure, err := nix.Closure(ctx, b.Store, roots...)
	if err != nil {
		return nil, err
	}
	groups := Group(closure, b.layers())
	layers := make([]Layer, len(groups))
	paths := make([][]string, len(groups))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(2, runtime.GOMAXPROCS(0)))
	for i, group := range groups {
		for _, p := range group {
			paths[i] = append(paths[i], p.Path)
		}
		g.Go(func() error {
			l, err := b.layer(gctx, group)
			layers[i] = l
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	raw, err := configJSON(platform, cfg, roots, layers, paths)
	if err != nil {
		return nil, err
	}
	cd, err := b.Cache.Put(raw)
	if err != nil {
		return nil, err
	}
	img := &Image{Platform: platform, Config: raw, ConfigDigest: cd, Layers: layers, Roots: roots, Closure: closure}
	if err := writeManifests(b.Cache, img); err != nil {
		return nil, err
	}
	return img, nil
}

// layer returns the layer of a group of store paths, from the cache if it
// was built before.
func (b *Builder) layer(ctx context.Context, group []*nix.PathInfo) (Layer, error) {
	key := b.layerKey(group)
	if l, ok := b.cachedLayer(key); ok {
		b.stats.layersReused.Add(1)
		return l, nil
	}
	return flight.Do(ctx, &b.flights, "layer\x00"+key, func(ctx context.Context) (Layer, error) {
		if l, ok := b.cachedLayer(key); ok {
			b.stats.layersReused.Add(1)
			return l, nil
		}
		l, err := b.writeLayer(ctx, group)
		if err != nil {
			return Layer{}, err
		}
		b.stats.layersBuilt.Add(1)
		b.stats.layerBytes.Add(l.Size)
		return l, b.rememberLayer(key, l)
	})
}

// layerKey identifies a layer's content: format, compression, and each
// path with its NAR hash.
func (b *Builder) layerKey(group []*nix.PathInfo) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", LayerFormat, b.compression())
	for _, p := range group {
		fmt.Fprintf(h, "%s %s\n", p.Path, p.NarHash)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (b *Builder) layerIndexPath(key string) string {
	return filepath.Join(b.Cache.dir, "layers", key+".json")
}

func (b *Builder) cachedLayer(key string) (Layer, bool) {
	data, err := os.ReadFile(b.layerIndexPath(key))
	if err != nil {
		return Layer{}, false
	}
	var l Layer
	if json.Unmarshal(data, &l) != nil {
		return Layer{}, false
	}
	if _, ok := b.Cache.Stat(l.Digest); !ok {
		return Layer{}, false
	}
	return l, true
}

func (b *Builder) rememberLayer(key string, l Layer) error {
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	tmp := b.layerIndexPath(key) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, b.layerIndexPath(key))
}

// writeLayer builds a layer's tar stream and stores it, compressed.
func (b *Builder) writeLayer(ctx context.Context, group []*nix.PathInfo) (Layer, error) {
	paths := make([]string, len(group))
	for i, p := range group {
		paths[i] = p.Path
	}
	return storeLayer(b.Cache, b.compression(), func(w io.Writer) error {
		return writeLayerTar(ctx, w, b.Store, paths)
	})
}
