package sbom

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/kix-project/kix/internal/nix"
)

// Scope says which graph a document describes.
type Scope string

const (
	// Runtime is the closure of the roots: what they reference at run time.
	Runtime Scope = "runtime"
	// BuildTime is the derivation graph: every output and source that
	// building the roots used.
	BuildTime Scope = "buildtime"
)

// Tool names the program that made a document.
type Tool struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// DefaultTool is the Tool of documents that name none.
var DefaultTool = Tool{Name: "kix"}

func (d *Document) tool() Tool {
	if d.Tool.Name == "" {
		return DefaultTool
	}
	return d.Tool
}

// Document is a bill of materials: one Component per store path.
type Document struct {
	Roots      []string     `json:"roots"` // store paths the document is about, sorted
	Scope      Scope        `json:"scope"`
	Components []*Component `json:"components"` // sorted by store path
	Tool       Tool         `json:"tool"`
	// Timestamp, if set, is written as the creation time. Zero keeps the
	// document reproducible.
	Timestamp time.Time `json:"-"`
	// Serial, if set, is the document's UUID; otherwise Serial() derives
	// one from the content.
	serial string
}

// Component is one store path.
type Component struct {
	StorePath   string   `json:"storePath"`
	Name        string   `json:"name"`
	Version     string   `json:"version,omitempty"`
	Output      string   `json:"output,omitempty"` // "out", "dev", ...; "" when unknown
	Deriver     string   `json:"deriver,omitempty"`
	NarHash     string   `json:"narHash,omitempty"` // SHA-256 of the NAR, lowercase hex
	NarSize     uint64   `json:"narSize,omitempty"`
	Licenses    []string `json:"licenses,omitempty"` // SPDX ids or LicenseRef-...
	Homepage    string   `json:"homepage,omitempty"`
	Description string   `json:"description,omitempty"`
	CPE         string   `json:"cpe,omitempty"`
	Patches     []string `json:"patches,omitempty"`   // store paths of the deriver's patches
	DependsOn   []string `json:"dependsOn,omitempty"` // store paths, sorted, never itself
}

// FromClosure describes the runtime closure of roots. closure holds the
// PathInfo of every path nix.Closure returned for them.
func FromClosure(roots []string, closure []*nix.PathInfo) (*Document, error) {
	d := &Document{Roots: sortedUnique(roots), Scope: Runtime}
	have := make(map[string]bool, len(closure))
	for _, info := range closure {
		have[info.Path] = true
	}
	for _, r := range d.Roots {
		if !have[r] {
			return nil, fmt.Errorf("root %s is not in its closure", r)
		}
	}
	for _, info := range closure {
		c, err := componentOf(info.Path, info.Deriver, info)
		if err != nil {
			return nil, err
		}
		for _, ref := range info.References {
			if ref == info.Path {
				continue
			}
			if !have[ref] {
				return nil, fmt.Errorf("%s references %s, which is not in the closure", info.Path, ref)
			}
			c.DependsOn = append(c.DependsOn, ref)
		}
		d.Components = append(d.Components, c)
	}
	d.sort()
	return d, nil
}

// componentOf makes a component from what the store path's name and its
// deriver's name say; info may be nil (a path that is not built).
func componentOf(path, deriver string, info *nix.PathInfo) (*Component, error) {
	if _, err := nix.ParseStorePath(path); err != nil {
		return nil, err
	}
	c := &Component{StorePath: path, Deriver: deriver}
	storeName := nix.NamePart(path)
	drvName := ""
	if deriver != "" {
		drvName = strings.TrimSuffix(nix.NamePart(deriver), ".drv")
	}
	switch {
	case drvName != "" && storeName == drvName:
		c.Output = "out"
	case drvName != "" && strings.HasPrefix(storeName, drvName+"-"):
		c.Output = strings.TrimPrefix(storeName, drvName+"-")
	default:
		drvName = storeName
	}
	c.Name, c.Version = ParseDrvName(drvName)
	if deriver == "" && isSourceFile(storeName) {
		// A file added to the store (a patch, a tarball) is named, not
		// versioned: CVE-2099-0001.patch is not CVE at 2099-0001.patch.
		c.Name, c.Version = storeName, ""
	}
	if info != nil {
		hex, err := hexHash(info.NarHash)
		if err != nil {
			return nil, fmt.Errorf("NAR hash of %s: %w", path, err)
		}
		c.NarHash, c.NarSize = hex, info.NarSize
	}
	return c, nil
}

// sourceSuffixes are the file name endings of sources a build reads from
// the store as they are.
var sourceSuffixes = []string{
	".patch", ".diff", ".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar.zst", ".zip",
	".sh", ".nix", ".json", ".yaml", ".toml", ".txt", ".c", ".h", ".py",
}

func isSourceFile(name string) bool {
	return slices.ContainsFunc(sourceSuffixes, func(s string) bool { return strings.HasSuffix(name, s) })
}

func hexHash(h string) (string, error) {
	parsed, err := nixhash.ParseAny(h, nil)
	if err != nil {
		return "", err
	}
	if parsed.Algo().String() != "sha256" {
		return "", fmt.Errorf("%s is not a SHA-256 hash", h)
	}
	return parsed.Format(nixhash.Base16, false), nil
}

// ParseDrvName splits a derivation or store name into name and version as
// Nix's builtins.parseDrvName does: the version starts after the first dash
// that is not followed by a letter. "hello-2.12.1" is hello 2.12.1,
// "busybox-static-bootstrap" has no version, "libgreet-0.3.0-dev" is
// libgreet 0.3.0-dev.
func ParseDrvName(s string) (name, version string) {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '-' && !isLetter(s[i+1]) {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func isLetter(b byte) bool { return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }

func (d *Document) sort() {
	slices.SortFunc(d.Components, func(a, b *Component) int { return strings.Compare(a.StorePath, b.StorePath) })
	for _, c := range d.Components {
		c.DependsOn = sortedUnique(c.DependsOn)
	}
}

func sortedUnique(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// Component returns the component of a store path, or nil.
func (d *Document) Component(storePath string) *Component {
	i, ok := slices.BinarySearchFunc(d.Components, storePath, func(c *Component, p string) int {
		return strings.Compare(c.StorePath, p)
	})
	if !ok {
		return nil
	}
	return d.Components[i]
}

// RandomSerial gives the document a random UUID instead of one derived
// from its content.
func (d *Document) RandomSerial() error {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	d.serial = formatUUID(b, 4)
	return nil
}

// Serial returns the document's UUID: random if RandomSerial was called,
// otherwise a name-based UUID (version 5 layout, over SHA-256) of the
// document's content, so the same closure always gets the same one.
func (d *Document) Serial() string {
	if d.serial != "" {
		return d.serial
	}
	content, err := json.Marshal(d)
	if err != nil {
		// A Document holds only strings and numbers.
		return ""
	}
	return nameUUID(content)
}

// nameUUID is a name-based (version 5 layout) UUID of data: the same data
// always gets the same one.
func nameUUID(data []byte) string {
	sum := sha256.Sum256(data)
	var b [16]byte
	copy(b[:], sum[:16])
	return formatUUID(b, 5)
}

func formatUUID(b [16]byte, version byte) string {
	b[6] = b[6]&0x0f | version<<4
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Name is a short name for the document: its root's name and version, or
// the number of roots.
func (d *Document) Name() string {
	if len(d.Roots) == 1 {
		return nix.NamePart(d.Roots[0])
	}
	return fmt.Sprintf("closure of %d store paths", len(d.Roots))
}
