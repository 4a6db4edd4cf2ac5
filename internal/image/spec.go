package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/kix-project/kix/internal/nix"
)

// Spec is an image spec: the JSON that kix's Nix library (nix/image.nix,
// imageSpec) writes to a store path.
//
//	{
//	  "kixImageSpec": 1,
//	  "name": "hello",
//	  "systems": {
//	    "x86_64-linux": {
//	      "roots": ["/nix/store/…-hello-2.12.1"],
//	      "entrypoint": ["/nix/store/…-hello-2.12.1/bin/hello"],
//	      "cmd": [], "env": {"K": "V"}, "workingDir": "/", "user": "0:0",
//	      "exposedPorts": ["8080/tcp"], "labels": {}
//	    }
//	  }
//	}
type Spec struct {
	Version int                   `json:"kixImageSpec"`
	Name    string                `json:"name"`
	Systems map[string]SystemSpec `json:"systems"`
}

// SystemSpec is one system's image in a Spec.
type SystemSpec struct {
	Roots []string `json:"roots"`
	Config
}

// SpecVersion is the spec format kix reads.
const SpecVersion = 1

const maxSpecSize = 1 << 20

// isSpec reports whether a JSON file declares itself an image spec.
func isSpec(content []byte) bool {
	var probe struct {
		Version *int `json:"kixImageSpec"`
	}
	return json.Unmarshal(content, &probe) == nil && probe.Version != nil
}

// ParseSpec parses and checks an image spec.
func ParseSpec(content []byte) (*Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(content))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("parsing image spec: %w", err)
	}
	if s.Version != SpecVersion {
		return nil, fmt.Errorf("image spec version %d is not supported (want %d)", s.Version, SpecVersion)
	}
	if len(s.Systems) == 0 {
		return nil, fmt.Errorf("image spec %q names no systems", s.Name)
	}
	for system, ss := range s.Systems {
		if _, err := platformOf(system); err != nil {
			return nil, fmt.Errorf("image spec %q: %w", s.Name, err)
		}
		if len(ss.Roots) == 0 {
			return nil, fmt.Errorf("image spec %q: system %s has no roots", s.Name, system)
		}
		for _, r := range ss.Roots {
			if _, err := nix.ParseStorePath(r); err != nil {
				return nil, fmt.Errorf("image spec %q, system %s: %w", s.Name, system, err)
			}
		}
	}
	return &s, nil
}

// fromSpec assembles the image (one system) or index (several) a spec
// describes. Roots without an explicit PATH get one made of their bin/
// folders; an entrypoint is never guessed for a spec.
func (b *Builder) fromSpec(ctx context.Context, storePath string, s *Spec) (*Artifact, error) {
	systems := slices.Sorted(maps.Keys(s.Systems))
	images := make([]*Image, 0, len(systems))
	for _, system := range systems {
		ss := s.Systems[system]
		img, err := b.BuildRoots(ctx, ss.Roots, withDefaultPath(ss.Config, ss.Roots), system)
		if err != nil {
			return nil, fmt.Errorf("image spec %s, system %s: %w", storePath, system, err)
		}
		images = append(images, img)
	}
	a := &Artifact{StorePath: storePath}
	if len(images) == 1 {
		a.Image = images[0]
		return a, nil
	}
	idx, err := newIndex(b.Cache, images)
	if err != nil {
		return nil, err
	}
	a.Index = idx
	return a, nil
}
