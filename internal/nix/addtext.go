package nix

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strings"
)

// AddText adds a text file to the store, as builtins.toFile does, with
// references to the given store paths (which must be valid): the file's
// closure then includes theirs. It returns the file's store path. Nix
// writes no derivation for it, so nothing needs building.
func AddText(ctx context.Context, name, text string, references []string) (string, error) {
	var expr strings.Builder
	fmt.Fprintf(&expr, "builtins.toFile %s (%s", Quote(name), Quote(text))
	for _, r := range references {
		if _, err := ParseStorePath(r); err != nil {
			return "", err
		}
		// An empty string that carries the path's context: toFile records
		// it as a reference.
		fmt.Fprintf(&expr, " + builtins.substring 0 0 (builtins.storePath %s)", Quote(r))
	}
	expr.WriteString(")")
	out, err := Run(ctx, nil, "nix", "--extra-experimental-features", "nix-command", "eval", "--impure", "--raw", "--expr", expr.String())
	if err != nil {
		return "", fmt.Errorf("adding %s to the store: %w", name, err)
	}
	return ParseStorePath(strings.TrimSpace(string(out)))
}

// AddTree copies a folder into the store as builtins.path does and
// returns its store path. With keep, only those files (paths relative to
// root, slash-separated) and the folders holding them are copied.
func AddTree(ctx context.Context, root, name string, keep []string) (string, error) {
	filter := "_: _: true"
	if keep != nil {
		wanted := map[string]bool{}
		for _, f := range keep {
			for p := path.Clean(f); p != "." && p != "/" && !wanted[p]; p = path.Dir(p) {
				wanted[p] = true
			}
		}
		list, err := os.CreateTemp("", "kix-tree-*.json")
		if err != nil {
			return "", err
		}
		defer os.Remove(list.Name())
		if err := json.NewEncoder(list).Encode(wanted); err != nil {
			list.Close()
			return "", err
		}
		if err := list.Close(); err != nil {
			return "", err
		}
		// The filter sees absolute paths; the list holds relative ones.
		filter = fmt.Sprintf(`let keep = builtins.fromJSON (builtins.readFile %s); n = builtins.stringLength (toString root) + 1; in
  p: _: keep ? ${builtins.substring n (-1) (toString p)}`, Quote(list.Name()))
	}
	expr := fmt.Sprintf(`let root = %s; in builtins.path { path = root; name = %s; filter = %s; }`,
		pathLiteral(root), Quote(name), filter)
	out, err := Run(ctx, nil, "nix", "--extra-experimental-features", "nix-command", "eval", "--impure", "--raw", "--expr", expr)
	if err != nil {
		return "", fmt.Errorf("adding %s to the store: %w", root, err)
	}
	return ParseStorePath(strings.TrimSpace(string(out)))
}
