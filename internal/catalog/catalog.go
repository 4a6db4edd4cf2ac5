// Package catalog reads a provider's catalogue of building blocks, written
// in Nix, and customises a block with a tenant's values.
//
// A catalogue file's value is an attrset of blocks (a block is named by its
// key, or by a name attribute when one catalogue has several versions):
//
//	{
//	  hello-web = {
//	    version = "1.0";
//	    description = "A web page that says hello";
//	    manifests = pkgs.writeText "hello-web.json" (builtins.toJSON [ ... ]);
//	    # optional: values -> manifests
//	    customize = values: pkgs.writeText "hello-web.json" (builtins.toJSON [ ... ]);
//	  };
//	}
//
// Each block becomes a cluster-scoped BuildingBlock named <block>-<version>
// whose spec.manifests is the store path of its manifests. The catalogue's
// folder is copied to the store and named in spec.source, so a customisable
// block is evaluated again, exactly as published, with an Installation's
// values.
package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/eval"
	"github.com/kix-project/kix/internal/nix"
)

// Labels on BuildingBlocks.
const (
	LabelBlock     = "kix.dev/block"
	LabelVersion   = "kix.dev/version"
	LabelCatalog   = "kix.dev/catalog"
	LabelOwnerNS   = "kix.dev/owner-namespace"
	LabelOwnerName = "kix.dev/owner-installation"
)

// customizeApplied calls a block's customize with values (a Nix string of
// JSON) and gives the manifests' store path.
const customizeApplied = `b: "${b.customize (builtins.fromJSON %s)}"`

// Block is one entry of a catalogue.
type Block struct {
	Attribute    string `json:"-"` // its key in the catalogue
	Name         string `json:"name"`
	Version      string `json:"version"`
	Description  string `json:"description"`
	Manifests    string `json:"manifests"`
	Customizable bool   `json:"customizable"`
}

// blocksOnly keeps what of each block JSON can carry.
// A block missing what it must have fails naming it.
const blocksOnly = `blocks:
  if !builtins.isAttrs blocks then throw "a catalogue is an attrset of blocks, not a ${builtins.typeOf blocks}" else
  builtins.mapAttrs (key: b:
    let need = attr: if b ? ${attr} then b.${attr} else throw "block ${key} has no ${attr}"; in
    if !builtins.isAttrs b then throw "block ${key} is a ${builtins.typeOf b}, not an attrset" else {
      name = b.name or key;
      version = toString (need "version");
      description = b.description or "";
      manifests = "${need "manifests"}";
      customizable = b ? customize;
    }) blocks`

// Read evaluates a catalogue file and builds every block's manifests.
func Read(ctx context.Context, file string) ([]Block, error) {
	value, _, err := eval.Value(ctx, eval.Options{File: file, Apply: blocksOnly})
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	var byKey map[string]Block
	if err := json.Unmarshal(data, &byKey); err != nil {
		return nil, fmt.Errorf("%s: a catalogue is an attrset of blocks: %w", file, err)
	}
	var blocks []Block
	for key, b := range byKey {
		b.Attribute = key
		if b.Version == "" {
			return nil, fmt.Errorf("%s: block %s has no version", file, b.Name)
		}
		blocks = append(blocks, b)
	}
	slices.SortFunc(blocks, func(a, b Block) int { return strings.Compare(a.Attribute, b.Attribute) })
	return blocks, nil
}

// Objects returns the BuildingBlocks of a catalogue. source is the
// catalogue file's store path (see Publishable).
func Objects(blocks []Block, catalogName, source string) []*unstructured.Unstructured {
	var objs []*unstructured.Unstructured
	for _, b := range blocks {
		spec := map[string]any{
			"block":       b.Name,
			"version":     b.Version,
			"description": b.Description,
			"manifests":   b.Manifests,
		}
		if b.Customizable {
			spec["source"] = map[string]any{"file": source, "attribute": b.Attribute}
		}
		objs = append(objs, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": v1alpha1.GroupVersion.String(),
			"kind":       "BuildingBlock",
			"metadata": map[string]any{
				"name":   ObjectName(b.Name, b.Version),
				"labels": map[string]any{LabelBlock: labelValue(b.Name), LabelVersion: labelValue(b.Version), LabelCatalog: labelValue(catalogName)},
			},
			"spec": spec,
		}})
	}
	return objs
}

// Publishable copies the catalogue's source tree into the store and
// returns the catalogue file's path there: what BuildingBlocks name as
// their source, so a block is customised later exactly as published,
// whatever the provider's checkout holds by then. The tree is root; when
// root is empty, the git work tree holding the file (its tracked files and
// untracked ones git does not ignore: what a flake would see), or else the
// file's folder.
func Publishable(ctx context.Context, file, root string) (string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", err
	}
	var keep []string
	if root == "" {
		root, keep, err = gitTree(ctx, filepath.Dir(abs))
		if err != nil {
			return "", err
		}
	}
	if root == "" {
		root = filepath.Dir(abs)
	}
	if root, err = filepath.Abs(root); err != nil {
		return "", err
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("the catalogue %s is outside its source tree %s", file, root)
	}
	if keep != nil && !slices.Contains(keep, filepath.ToSlash(rel)) {
		return "", fmt.Errorf("the catalogue %s is ignored by git: its source tree %s would not hold it", file, root)
	}
	dir, err := nix.AddTree(ctx, root, "kix-catalog-source", keep)
	if err != nil {
		return "", err
	}
	return dir + "/" + filepath.ToSlash(rel), nil
}

// gitTree returns the top of the git work tree holding dir and its files
// that are tracked or untracked but not ignored; an empty root when dir is
// not in one (or git is not installed). Any other failure of git (a work
// tree it refuses, say) is an error: publishing the folder instead would
// take what git ignores.
func gitTree(ctx context.Context, dir string) (string, []string, error) {
	revParse := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--show-toplevel")
	revParse.Env = append(os.Environ(), "LC_ALL=C") // its message is matched below
	top, err := revParse.Output()
	var exit *exec.ExitError
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return "", nil, nil
	case errors.As(err, &exit) && strings.Contains(string(exit.Stderr), "not a git repository"):
		return "", nil, nil
	case err != nil:
		why := ""
		if exit != nil {
			why = ": " + strings.TrimSpace(string(exit.Stderr))
		}
		return "", nil, fmt.Errorf("finding the git work tree of %s: %w%s", dir, err, why)
	}
	root := strings.TrimSpace(string(top))
	cmd := exec.CommandContext(ctx, "git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	out, err := cmd.Output()
	if err != nil {
		return "", nil, fmt.Errorf("listing the files of %s: %w", root, err)
	}
	var files []string
	for _, f := range strings.Split(string(out), "\x00") {
		if f == "" {
			continue
		}
		// Deleted but still tracked files are not there to copy.
		if _, err := os.Lstat(filepath.Join(root, f)); err == nil {
			files = append(files, f)
		}
	}
	return root, files, nil
}

// Customize evaluates a block's customize function with values (JSON) and
// returns the store path of the manifests it builds.
func Customize(ctx context.Context, src v1alpha1.BlockSource, values []byte) (string, error) {
	if !json.Valid(values) {
		return "", fmt.Errorf("values are not JSON")
	}
	value, _, err := eval.Value(ctx, eval.Options{File: src.File, Attr: src.Attribute, Apply: fmt.Sprintf(customizeApplied, nix.Quote(string(values)))})
	if err != nil {
		return "", err
	}
	path, ok := value.(string)
	if !ok {
		return "", fmt.Errorf("%s: %s.customize did not give manifests", src.File, src.Attribute)
	}
	return nix.ParseStorePath(path)
}

var (
	unsafe      = regexp.MustCompile(`[^a-z0-9.-]+`)
	unsafeLabel = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
)

// ObjectName is the BuildingBlock name of a block at a version.
func ObjectName(block, version string) string {
	return strings.Trim(unsafe.ReplaceAllString(strings.ToLower(block+"-"+version), "-"), "-.")
}

// labelValue fits s into a label value.
func labelValue(s string) string {
	s = unsafeLabel.ReplaceAllString(s, "-")
	if len(s) > 63 {
		s = s[:63]
	}
	return strings.Trim(s, "-._")
}
