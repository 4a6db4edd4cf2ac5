package cli

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kix-project/kix/internal/image"
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
	cmd.AddCommand(newCmdImageRef(streams), newCmdImageBuild(streams))
	return cmd
}

func newCmdImageBuild(streams IOStreams) *cobra.Command {
	var (
		packageSet, name    string
		entrypoint, cmdArgs []string
		envs, systems       []string
	)
	cmd := &cobra.Command{
		Use:   "build --package-set FILE ATTR...",
		Short: "Build packages of a package set and write an image spec for them to the store",
		Long: `Build the attributes of --package-set (a Nix file or flake) and write an image
spec for their closures to the store; print its store path, which kix
registry serves as an image (kix image ref prints its reference). This is what
kix controller's build Jobs run for a NixImage.`,
		Example: `  kix image build --package-set ./pkgs.nix --name tools curl jq
  kix image ref $(kix image build --package-set ./pkgs.nix hello)`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, attrs []string) error {
			if packageSet == "" {
				return usageErrorf("give the package set with --package-set")
			}
			if name == "" {
				name = strings.Join(attrs, "-")
			}
			env, err := pairs("--env", envs)
			if err != nil {
				return err
			}
			path, err := image.BuildSpec(cmd.Context(), image.PackageRequest{
				Name: name, PackageSet: packageSet, Contents: attrs, Systems: systems,
				Config: image.Config{Entrypoint: entrypoint, Cmd: cmdArgs, Env: env},
			})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(streams.Out, path)
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&packageSet, "package-set", "", "Nix file or flake whose attributes to build")
	fs.StringVar(&name, "name", "", "name of the image (default: the attributes)")
	fs.StringArrayVar(&entrypoint, "entrypoint", nil, "entrypoint, one argument per flag (default: the one program of a single package)")
	fs.StringArrayVar(&cmdArgs, "cmd", nil, "command arguments, one per flag")
	fs.StringArrayVar(&envs, "env", nil, "NAME=VALUE set in the image (repeatable)")
	fs.StringArrayVar(&systems, "system", nil, "Nix system to build for (default: this machine's)")
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
