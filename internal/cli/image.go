package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/internal/registry"
)

// NewCmdImage builds `kix image`.
func NewCmdImage(streams IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Work with the images kix makes from store paths",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newCmdImageRef(streams))
	return cmd
}

func newCmdImageRef(streams IOStreams) *cobra.Command {
	var host string
	cmd := &cobra.Command{
		Use:   "ref PATH...",
		Short: "Print the image reference of store paths (nix.internal/<hash>-<name>)",
		Long: `Print the reference under which kix's registry serves each store path.
PATH may be a store path, a path inside one, or a symlink to one (./result).`,
		Example: `  kix image ref ./result
  kix image ref --registry registry.example.org:5000 /nix/store/...-hello-2.12.1`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			for _, arg := range args {
				p, err := resolveStorePath(arg)
				if err != nil {
					return err
				}
				fmt.Fprintf(streams.Out, "%s/%s\n", host, registry.Repository(p))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&host, "registry", registry.Host, "registry host to name instead of nix.internal")
	return cmd
}

// resolveStorePath accepts a store path, a path inside one, or a symlink
// (such as nix-build's ./result) to either, and returns the store path.
func resolveStorePath(arg string) (string, error) {
	p := arg
	if !filepath.IsAbs(p) || !isInStore(p) {
		resolved, err := filepath.EvalSymlinks(arg)
		if err != nil {
			return "", fmt.Errorf("%s: %w", arg, err)
		}
		p = resolved
	}
	sp, _, err := nix.SplitStorePath(p)
	if err != nil {
		return "", fmt.Errorf("%s is not in the Nix store", arg)
	}
	return sp, nil
}

func isInStore(p string) bool {
	_, _, err := nix.SplitStorePath(filepath.Clean(p))
	return err == nil
}
