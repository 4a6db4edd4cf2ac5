package nix

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// AddText adds a text file to the store, as builtins.toFile does, with
// references to the given store paths (which must be valid): the file's
// closure then includes theirs. It returns the file's store path. Nix
// writes no derivation for it, so nothing needs building.
func AddText(ctx context.Context, name, text string, references []string) (string, error) {
	var expr strings.Builder
	fmt.Fprintf(&expr, "builtins.toFile %s (%s", nixString(name), nixString(text))
	for _, r := range references {
		if _, err := ParseStorePath(r); err != nil {
			return "", err
		}
		// An empty string that carries the path's context: toFile records
		// it as a reference.
		fmt.Fprintf(&expr, " + builtins.substring 0 0 (builtins.storePath %s)", nixString(r))
	}
	expr.WriteString(")")
	cmd := exec.CommandContext(ctx, "nix", "--extra-experimental-features", "nix-command", "eval", "--impure", "--raw", "--expr", expr.String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("adding %s to the store: %v: %s", name, err, lastLines(strings.TrimSpace(stderr.String()), 10))
	}
	return ParseStorePath(strings.TrimSpace(stdout.String()))
}
