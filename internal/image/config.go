package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/nix-community/go-nix/pkg/nar"

	"github.com/kix-project/kix/internal/nix"
)

// Config is what an image runs: the part of the OCI image config a user
// chooses. Zero fields are left out.
type Config struct {
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Cmd          []string          `json:"cmd,omitempty"`
	Env          map[string]string `json:"env,omitempty"`
	WorkingDir   string            `json:"workingDir,omitempty"`
	User         string            `json:"user,omitempty"`
	ExposedPorts []string          `json:"exposedPorts,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
}

// The image config JSON kix writes. Its own types (rather than v1.ConfigFile)
// keep the bytes stable: no creation time, no empty fields.
type configFile struct {
	Architecture string          `json:"architecture"`
	OS           string          `json:"os"`
	Variant      string          `json:"variant,omitempty"`
	Config       containerConfig `json:"config"`
	RootFS       rootFS          `json:"rootfs"`
	History      []history       `json:"history,omitempty"`
}

type containerConfig struct {
	User         string              `json:"User,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Entrypoint   []string            `json:"Entrypoint,omitempty"`
	Cmd          []string            `json:"Cmd,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
}

type rootFS struct {
	Type    string    `json:"type"`
	DiffIDs []v1.Hash `json:"diff_ids"`
}

type history struct {
	CreatedBy string `json:"created_by"`
	Comment   string `json:"comment,omitempty"`
}

// RootsLabel names the store paths an image was made from.
const RootsLabel = "dev.kix.nix.roots"

// configJSON serialises the image config.
func configJSON(p v1.Platform, cfg Config, roots []string, layers []Layer, groups [][]string) ([]byte, error) {
	env := make([]string, 0, len(cfg.Env))
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		env = append(env, k+"="+cfg.Env[k])
	}
	labels := maps.Clone(cfg.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[RootsLabel] = strings.Join(roots, " ")
	f := configFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		Variant:      p.Variant,
		Config: containerConfig{
			User:       cfg.User,
			Env:        env,
			Entrypoint: cfg.Entrypoint,
			Cmd:        cfg.Cmd,
			WorkingDir: cfg.WorkingDir,
			Labels:     labels,
		},
		RootFS: rootFS{Type: "layers", DiffIDs: []v1.Hash{}},
	}
	if len(cfg.ExposedPorts) > 0 {
		f.Config.ExposedPorts = map[string]struct{}{}
		for _, port := range cfg.ExposedPorts {
			if !strings.Contains(port, "/") {
				port += "/tcp"
			}
			f.Config.ExposedPorts[port] = struct{}{}
		}
	}
	for i, l := range layers {
		f.RootFS.DiffIDs = append(f.RootFS.DiffIDs, l.DiffID)
		f.History = append(f.History, history{CreatedBy: "kix", Comment: describeLayer(groups[i])})
	}
	return json.Marshal(f)
}

// describeLayer names a layer's store paths for `docker history` and the
// like: all of them, or the first few.
func describeLayer(paths []string) string {
	const shown = 5
	names := make([]string, 0, shown)
	for i, p := range paths {
		if i == shown {
			return fmt.Sprintf("store paths: %s and %d more", strings.Join(names, " "), len(paths)-shown)
		}
		names = append(names, nix.BaseName(p))
	}
	return "store paths: " + strings.Join(names, " ")
}

// DefaultConfig is the config of an image made from roots alone: PATH holds
// each root's bin, and if a single root has exactly one program in bin/,
// that program is the entrypoint.
func DefaultConfig(ctx context.Context, store nix.Store, roots []string) (Config, error) {
	var programs []string
	if len(roots) == 1 {
		files, err := nix.Files(ctx, store, roots[0])
		if err != nil {
			return Config{}, err
		}
		defer files.Close()
		if programs, err = programsIn(files, roots[0]); err != nil {
			return Config{}, err
		}
	}
	return defaultConfig(roots, programs), nil
}

// defaultConfig is DefaultConfig, given the programs in bin/ of a single
// root.
func defaultConfig(roots, programs []string) Config {
	cfg := withDefaultPath(Config{}, roots)
	if len(roots) == 1 && len(programs) == 1 {
		cfg.Entrypoint = []string{roots[0] + "/bin/" + programs[0]}
	}
	return cfg
}

// withDefaultPath returns cfg with a PATH holding each root's bin folder,
// unless cfg sets PATH itself. cfg's Env is copied, not changed.
func withDefaultPath(cfg Config, roots []string) Config {
	env := maps.Clone(cfg.Env)
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["PATH"]; !ok {
		bins := make([]string, len(roots))
		for i, r := range roots {
			bins[i] = r + "/bin"
		}
		env["PATH"] = strings.Join(bins, ":")
	}
	cfg.Env = env
	return cfg
}

// programsIn lists what a store path's bin/ holds: executable files and
// symlinks (which in the store nearly always point at programs). It reads
// files on from wherever they are, so the path's first entry may already
// have been read.
func programsIn(files nix.FileReader, root string) ([]string, error) {
	var programs []string
	for {
		h, err := files.Next()
		if err == io.EOF {
			return programs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s/bin: %w", root, err)
		}
		if path.Dir(h.Path) != "/bin" {
			if h.Path > "/bin/" && !strings.HasPrefix(h.Path, "/bin/") {
				return programs, nil // NAR order: bin's entries are done
			}
			continue
		}
		if h.Type == nar.TypeSymlink || h.Type == nar.TypeRegular && h.Executable {
			programs = append(programs, path.Base(h.Path))
		}
	}
}
