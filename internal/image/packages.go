package image

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/kix-project/kix/internal/nix"
)

// PackageRequest asks for an image of packages from a package set: what a
// NixImage says, or `kix image build`.
type PackageRequest struct {
	// Name names the image spec's store path (<name>-image-spec.json).
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
	return nix.AddText(ctx, req.Name+"-image-spec.json", string(text), slices.Compact(slices.Sorted(slices.Values(roots))))
}
