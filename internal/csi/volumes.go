package csi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// volumeFile is what a volume's folder records about it.
type volumeFile struct {
	VolumeID   string   `json:"volumeId"`
	StorePaths []string `json:"storePaths"` // what the attributes named
	Closure    []string `json:"closure"`    // what the view holds
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (d *Driver) volumesDir() string { return filepath.Join(d.opts.StateDir, "volumes") }

// volumeDir is the folder of a volume: volume.json and the view.
func (d *Driver) volumeDir(id string) string {
	return filepath.Join(d.volumesDir(), volumeDirName(id))
}

// viewDir is what is mounted at a volume's targets: it holds store/.
func viewDir(volumeDir string) string { return filepath.Join(volumeDir, "nix") }

// readVolume returns what is recorded about a volume, or nil if it has no
// folder.
func readVolume(volumeDir string) (*volumeFile, error) {
	data, err := os.ReadFile(filepath.Join(volumeDir, "volume.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var v volumeFile
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", volumeDir, err)
	}
	return &v, nil
}

// makeVolume builds a volume's folder in tmp/ — volume.json and a view of
// the closure made of hard links into the store — and renames it into
// place, so a volume folder that exists is complete. The caller holds the
// store shared.
func (d *Driver) makeVolume(id string, paths, closure []string) error {
	work, err := os.MkdirTemp(d.store.tmpDir(), "volume-")
	if err != nil {
		return err
	}
	defer removeAll(work)
	storeDir := filepath.Join(viewDir(work), "store")
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		return err
	}
	for _, p := range closure {
		if err := linkTree(d.store.Path(p), filepath.Join(storeDir, filepath.Base(p))); err != nil {
			return fmt.Errorf("making the view of %s: %w", p, err)
		}
	}
	if err := sealDirs([]string{viewDir(work), storeDir}); err != nil {
		return err
	}
	data, err := json.MarshalIndent(volumeFile{VolumeID: id, StorePaths: paths, Closure: closure}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "volume.json"), data, 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(d.volumesDir(), 0o755); err != nil {
		return err
	}
	return os.Rename(work, d.volumeDir(id))
}

// liveClosures returns every store path some volume's view holds, and the
// volume folders that are no longer mounted anywhere.
func (d *Driver) liveClosures(mounted func(volumeDir string) bool) (map[string]bool, []string, error) {
	entries, err := os.ReadDir(d.volumesDir())
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	live := map[string]bool{}
	var orphans []string
	for _, e := range entries {
		dir := filepath.Join(d.volumesDir(), e.Name())
		if !mounted(dir) {
			orphans = append(orphans, dir)
			continue
		}
		v, err := readVolume(dir)
		if err != nil || v == nil {
			return nil, nil, fmt.Errorf("volume folder %s: %v", dir, err)
		}
		for _, p := range v.Closure {
			live[filepath.Base(p)] = true
		}
	}
	return live, orphans, nil
}

func sameStrings(a, b []string) bool {
	return slices.Equal(a, b)
}

// hasSuffixPath reports whether p ends with the path elements of suffix.
func hasSuffixPath(p, suffix string) bool {
	return p == suffix || strings.HasSuffix(p, "/"+strings.TrimPrefix(suffix, "/"))
}
