package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/kix-project/kix/internal/image"
	"github.com/kix-project/kix/internal/nix"
)

// storeOptions choose where store paths come from: the local store, or
// binary caches (substituters) checked against trusted keys.
type storeOptions struct {
	Substituters []string
	TrustedKeys  []string
	CacheDir     string
	CacheSize    string
	Layers       int
	Compression  string
	System       string
}

func (o *storeOptions) addStoreFlags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&o.Substituters, "substituter", nil, "read store paths from this Nix binary cache URL instead of the local store (repeatable, tried in order)")
	fs.StringArrayVar(&o.TrustedKeys, "trusted-public-key", nil, "public key (name:base64) that substituters' narinfos must be signed with (repeatable)")
}

func (o *storeOptions) addImageFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.CacheDir, "cache-dir", defaultCacheDir("images"), "folder for built layers and downloaded NARs")
	fs.StringVar(&o.CacheSize, "cache-size", "10Gi", "bound on the layer cache's size (bytes, or with a suffix such as 500Mi, 10Gi)")
	fs.IntVar(&o.Layers, "layers", image.DefaultLayers, "most layers an image is split into")
	fs.StringVar(&o.Compression, "compression", string(image.Gzip), "layer compression: gzip, zstd or none")
	fs.StringVar(&o.System, "system", image.CurrentSystem(), "Nix system that plain store paths are served for")
}

func defaultCacheDir(what string) string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "kix", what)
}

// store opens the configured store.
func (o *storeOptions) store() (nix.Store, error) {
	if len(o.Substituters) == 0 {
		if len(o.TrustedKeys) > 0 {
			return nil, usageErrorf("--trusted-public-key needs --substituter")
		}
		return nix.NewLocalStore(), nil
	}
	var stores nix.Stores
	for _, url := range o.Substituters {
		c, err := nix.NewBinaryCache(url, nix.BinaryCacheOptions{
			TrustedKeys: o.TrustedKeys,
			CacheDir:    o.narCacheDir(),
		})
		if err != nil {
			return nil, fmt.Errorf("--substituter %s: %w", url, err)
		}
		stores = append(stores, c)
	}
	if len(stores) == 1 {
		return stores[0], nil
	}
	return stores, nil
}

func (o *storeOptions) narCacheDir() string {
	if o.CacheDir == "" {
		return ""
	}
	return filepath.Join(o.CacheDir, "nar")
}

// builder opens the layer cache and returns an image builder over store.
func (o *storeOptions) builder(store nix.Store) (*image.Builder, error) {
	size, err := parseBytes(o.CacheSize)
	if err != nil {
		return nil, usageErrorf("--cache-size: %v", err)
	}
	comp, err := image.ParseCompression(o.Compression)
	if err != nil {
		return nil, usageErrorf("--compression: %v", err)
	}
	if o.Layers < 1 {
		return nil, usageErrorf("--layers must be at least 1, got %d", o.Layers)
	}
	if o.System != "" {
		if err := image.CheckSystem(o.System); err != nil {
			return nil, usageErrorf("--system: %v", err)
		}
	}
	cache, err := image.OpenBlobCache(o.CacheDir, size)
	if err != nil {
		return nil, fmt.Errorf("opening layer cache %s: %w", o.CacheDir, err)
	}
	return &image.Builder{Store: store, Cache: cache, Layers: o.Layers, Compression: comp, System: o.System}, nil
}
