package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/catalog"
	"github.com/kix-project/kix/internal/deploy"
)

// CatalogPublishOptions are the flags of `kix catalog publish`.
type CatalogPublishOptions struct {
	IO IOStreams
	deployOptions
	File       string
	Catalog    string
	SourceRoot string
	Output     string
}

// NewCmdCatalog builds `kix catalog`.
func NewCmdCatalog(streams IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "Publish a catalogue of Nix-built building blocks to a cluster",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newCmdCatalogPublish(streams))
	return cmd
}

func newCmdCatalogPublish(streams IOStreams) *cobra.Command {
	opts := &CatalogPublishOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "publish -f FILE.nix",
		Short: "Turn a Nix attrset of building blocks into BuildingBlock objects",
		Long: `Evaluate FILE.nix, an attrset of blocks

  { NAME = { version; description; manifests; customize = values: manifests; }; }

build each block's manifests, copy the catalogue's source tree to the store
(so blocks with customize can be customised later, exactly as published: by
default the git work tree holding the file, without what git ignores, or
else the file's folder), and apply one
cluster-scoped BuildingBlock per block, named NAME-VERSION. Blocks that left
the file are deleted: the catalogue is an inventory of its own. Tenants browse
it with kubectl get buildingblocks and install blocks with Installations.`,
		Example: `  kix catalog publish -f blocks.nix
  kubectl get buildingblocks`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return catalogPublishRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&opts.File, "filename", "f", "", "the catalogue, a Nix file")
	fs.StringVar(&opts.Catalog, "catalog", "", "name of the catalogue (default: the file's name without .nix)")
	fs.StringVar(&opts.SourceRoot, "source-root", "", "the folder the catalogue and all it imports are in (default: its git work tree, or its folder)")
	fs.StringVarP(&opts.Output, "output", "o", "", "output format: json or yaml (default: a table)")
	opts.addDeployFlags(fs)
	opts.addApplyFlags(fs)
	opts.addDryRunFlag(fs)
	return cmd
}

func catalogPublishRun(ctx context.Context, opts *CatalogPublishOptions) error {
	format, err := parseOutputFormat(opts.Output)
	if err != nil {
		return err
	}
	if opts.File == "" {
		return usageErrorf("give the catalogue with -f FILE.nix")
	}
	name := opts.Catalog
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(opts.File), ".nix")
	}
	if opts.Inventory == "" {
		opts.Inventory = "kix-catalog-" + name
	}
	m, ns, inv, err := opts.connect(opts.IO)
	if err != nil {
		return err
	}
	blocks, err := catalog.Read(ctx, opts.File)
	if err != nil {
		return err
	}
	source, err := catalog.Publishable(ctx, opts.File, opts.SourceRoot)
	if err != nil {
		return err
	}
	progress := &progressPrinter{w: opts.IO.ErrOut}
	cs, applyErr := m.Apply(ctx, catalog.Objects(blocks, name, source), deploy.ApplyOptions{
		DefaultNamespace: ns,
		Inventory:        inv,
		Prune:            true,
		AllowEmpty:       opts.AllowEmpty,
		Force:            opts.ForceConflicts,
		Adopt:            opts.Adopt,
		DryRun:           opts.DryRun == "server",
		Progress:         progress.print,
	})
	var noKind *deploy.NoKindError
	if errors.As(applyErr, &noKind) && noKind.GVK.GroupVersion() == v1alpha1.GroupVersion {
		applyErr = fmt.Errorf("%w\nthe cluster does not serve kix's resources: install kix first (kix apply -f deploy), or only its CRDs (kix apply -f config/crd)", applyErr)
	}
	return finishChangeSet(opts.IO, format, cs, applyErr)
}
