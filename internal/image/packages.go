package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/kix-project/kix/internal/nix"
)

// PackageRequest asks for an image of packages from a package set: what a
// NixImage says, or `kix image build`.
type PackageRequest struct {
	// Name names the image spec's store path (<name>-image-spec.json; a
	// long name is cut short, ending in a hash of the whole).
	Name string
	// PackageSet is a Nix file or flake whose attributes Contents names.
	PackageSet string
	Contents   []string
	// Config is what the image runs. PATH defaults to the packages' bin
	// folders; with one package of one program and no entrypoint, that
	// program is the entrypoint.
	Config Config
	// Systems the image is for; this machine's if empty. The package set
	// is built here, so other systems need a machine of their own.
	Systems []string
}

// BuildSpec builds the packages and writes an image spec for them to the
// store, referencing them, and returns its store path: a path kix registry
// serves as the image.
func BuildSpec(ctx context.Context, req PackageRequest) (string, error) {
	here := CurrentSystem()
	for _, s := range req.Systems {
		if s != here {
			return "", fmt.Errorf("cannot build for %s here: this machine builds %s", s, here)
		}
	}
	roots, err := (&nix.PackageSet{Ref: req.PackageSet}).Build(ctx, req.Contents)
	if err != nil {
		return "", err
	}
	cfg := withDefaultPath(req.Config, roots)
	if len(cfg.Entrypoint) == 0 && len(roots) == 1 {
		def, err := DefaultConfig(ctx, nix.NewLocalStore(), roots)
		if err != nil {
			return "", err
		}
		cfg.Entrypoint = def.Entrypoint
	}
	spec := Spec{Version: SpecVersion, Name: req.Name, Systems: map[string]SystemSpec{here: {Roots: roots, Config: cfg}}}
	text, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	return nix.AddText(ctx, specName(req.Name), string(text), slices.Compact(slices.Sorted(slices.Values(roots))))
}

// maxStoreName is the longest name a store path may have.
const maxStoreName = 211

// specName names an image spec's store path: <name>-image-spec.json, with
// a name too long for a store path cut short and ended by a hash of the
// whole, so two long names still name two paths.
func specName(name string) string {
	const suffix = "-image-spec.json"
	if len(name)+len(suffix) <= maxStoreName {
		return name + suffix
	}
	sum := sha256.Sum256([]byte(name))
	tag := "-" + hex.EncodeToString(sum[:5])
	return name[:maxStoreName-len(suffix)-len(tag)] + tag + suffix
}
