package cli

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kix-project/kix/internal/deploy"
)

// PruneOptions are the flags of `kix prune`.
type PruneOptions struct {
	IO IOStreams
	evalOptions
	deployOptions
	Output string
}

// NewCmdPrune builds `kix prune`.
func NewCmdPrune(streams IOStreams) *cobra.Command {
	opts := &PruneOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "prune --inventory NAME [-f FILE]",
		Short: "Delete the members of an inventory that are not in the set, without applying anything",
		Long: `Evaluate -f and delete the members of --inventory that are not among its
objects, in reverse stage order, as kix apply --prune would after applying.
Without -f the set is empty: with --allow-empty, every member and the
inventory itself are deleted (an uninstall).`,
		Example: `  kix prune -f app.nix --inventory shop --dry-run=server
  kix prune --inventory shop --allow-empty`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return pruneRun(cmd.Context(), opts)
		},
	}
	opts.addEvalFlags(cmd.Flags())
	opts.addDeployFlags(cmd.Flags())
	opts.addDryRunFlag(cmd.Flags())
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "", "output format: json or yaml (default: a table)")
	return cmd
}

func pruneRun(ctx context.Context, opts *PruneOptions) error {
	format, err := parseOutputFormat(opts.Output)
	if err != nil {
		return err
	}
	if opts.Inventory == "" {
		return usageErrorf("give the set to prune with --inventory NAME")
	}
	m, ns, inv, err := opts.connect(opts.IO)
	if err != nil {
		return err
	}
	var objs []*unstructured.Unstructured
	if opts.File != "" {
		res, err := opts.evaluate(ctx, opts.IO.In, opts.IO.ErrOut)
		if err != nil {
			return err
		}
		objs = res.Objects
	}
	progress := &progressPrinter{w: opts.IO.ErrOut}
	cs, pruneErr := m.Prune(ctx, objs, deploy.ApplyOptions{
		DefaultNamespace: ns,
		EnforceNamespace: opts.enforceNamespace,
		Inventory:        inv,
		AllowEmpty:       opts.AllowEmpty,
		DryRun:           opts.DryRun == "server",
		Progress:         progress.print,
	})
	return finishChangeSet(opts.IO, format, cs, pruneErr)
}
