package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kix-project/kix/internal/deploy"
)

// deployOptions are what apply, diff and prune share: the cluster, the
// inventory, and how far to go.
type deployOptions struct {
	kubeOptions
	Inventory          string
	InventoryNamespace string
	AllowEmpty         bool
	DryRun             string
	ForceConflicts     bool
	Adopt              bool

	enforceNamespace bool // set by connect: the namespace is -n
}

func (o *deployOptions) addDeployFlags(fs *pflag.FlagSet) {
	o.addKubeFlags(fs)
	fs.StringVar(&o.Inventory, "inventory", "", "name of the set: recorded as an ApplySet whose parent is ConfigMap NAME, so members can be pruned")
	fs.StringVar(&o.InventoryNamespace, "inventory-namespace", "", "namespace of the inventory's ConfigMap (default: the namespace of -n or the context)")
	fs.BoolVar(&o.AllowEmpty, "allow-empty", false, "let a prune run with an empty set, deleting every member")
}

// addApplyFlags are for the commands that apply (or show) a set.
func (o *deployOptions) addApplyFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.ForceConflicts, "force-conflicts", false, "take over fields that other field managers own")
	fs.BoolVar(&o.Adopt, "adopt", false, "take objects that belong to another inventory into this one (refused by default)")
}

func (o *deployOptions) addDryRunFlag(fs *pflag.FlagSet) {
	fs.StringVar(&o.DryRun, "dry-run", "none", `"server" to have the server check and report everything while changing nothing`)
}

// connect opens a deploy manager and resolves namespaces and the inventory;
// with -n, objects that name another namespace are refused
// (enforceNamespace), as kubectl refuses them.
func (o *deployOptions) connect(streams IOStreams) (*deploy.Manager, string, *deploy.Inventory, error) {
	switch o.DryRun {
	case "", "none", "server":
	case "client":
		return nil, "", nil, usageErrorf(`--dry-run=client is not supported: use --dry-run=server (the server checks everything) or kix build`)
	default:
		return nil, "", nil, usageErrorf(`--dry-run must be "none" or "server", not %q`, o.DryRun)
	}
	quietClientGo()
	batchGC()
	cfg, err := o.restConfig(streams.ErrOut)
	if err != nil {
		return nil, "", nil, err
	}
	ns, explicit, err := o.namespace()
	if err != nil {
		return nil, "", nil, err
	}
	o.enforceNamespace = explicit
	m, err := deploy.NewManager(cfg)
	if err != nil {
		return nil, "", nil, err
	}
	var inv *deploy.Inventory
	if o.Inventory != "" {
		invNS := o.InventoryNamespace
		if invNS == "" {
			invNS = ns
		}
		// The parent is a ConfigMap of that name in that namespace.
		if errs := validation.IsDNS1123Subdomain(o.Inventory); len(errs) > 0 {
			return nil, "", nil, usageErrorf("--inventory %q cannot name a ConfigMap: %s", o.Inventory, strings.Join(errs, "; "))
		}
		if errs := validation.IsDNS1123Label(invNS); len(errs) > 0 {
			return nil, "", nil, usageErrorf("the inventory's namespace %q is not a namespace name: %s", invNS, strings.Join(errs, "; "))
		}
		inv = &deploy.Inventory{Name: o.Inventory, Namespace: invNS}
	}
	return m, ns, inv, nil
}

// ApplyOptions are the flags of `kix apply`.
type ApplyOptions struct {
	IO IOStreams
	evalOptions
	imageRefOptions
	deployOptions
	Prune   bool
	Wait    bool
	Timeout time.Duration
	Output  string
}

// NewCmdApply builds `kix apply`.
func NewCmdApply(streams IOStreams) *cobra.Command {
	opts := &ApplyOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--inventory NAME [--prune]] [--wait]",
		Short: "Apply a Nix expression's objects to the cluster: ordered, waited for, safely pruned",
		Long: `Evaluate -f (as kix build does), build what the objects refer to, and
apply the objects with server-side apply (field manager kix): namespaces
first, then CRDs (waited for until established), cluster-scoped objects,
namespaced objects, and admission webhooks last. Objects that are already as
desired are not sent; a stage the API refuses any object of is not applied.

With --inventory NAME the set is recorded as an ApplySet (ConfigMap NAME), and
--prune deletes members that left the set: never an object without the set's
label, never with an empty set unless --allow-empty, never an object annotated
kix.dev/prune: disabled, never a Namespace or CRD that objects which stay
need, or whose deletion would take objects kix does not own.

Exit status: 0 success, 1 failure (the table shows what was done), 2 usage.`,
		Example: `  kix apply -f app.nix --inventory shop --prune --wait
  kix apply -f app.nix --inventory shop --prune --dry-run=server
  kix apply -f ./manifests/ -n staging -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return applyRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	opts.addEvalFlags(fs)
	opts.addDeployFlags(fs)
	opts.addApplyFlags(fs)
	opts.addDryRunFlag(fs)
	opts.addImageRefFlags(fs)
	fs.BoolVar(&opts.Prune, "prune", false, "delete members of --inventory that are not in the set")
	fs.BoolVar(&opts.Wait, "wait", false, "wait until every object is ready (kstatus)")
	fs.DurationVar(&opts.Timeout, "timeout", deploy.DefaultTimeout, "how long --wait waits")
	fs.StringVarP(&opts.Output, "output", "o", "", "output format: json or yaml (default: a table)")
	return cmd
}

func applyRun(ctx context.Context, opts *ApplyOptions) error {
	format, err := parseOutputFormat(opts.Output)
	if err != nil {
		return err
	}
	if err := checkInput(&opts.evalOptions, &opts.imageRefOptions); err != nil {
		return err
	}
	if opts.Prune && opts.Inventory == "" {
		return usageErrorf("--prune needs --inventory NAME: kix prunes only sets it recorded")
	}
	m, ns, inv, err := opts.connect(opts.IO)
	if err != nil {
		return err
	}
	res, err := evaluatePublished(ctx, &opts.evalOptions, &opts.imageRefOptions, opts.IO)
	if err != nil {
		return err
	}
	progress := &progressPrinter{w: opts.IO.ErrOut}
	cs, applyErr := m.Apply(ctx, res.Objects, deploy.ApplyOptions{
		DefaultNamespace: ns,
		EnforceNamespace: opts.enforceNamespace,
		Inventory:        inv,
		Prune:            opts.Prune,
		AllowEmpty:       opts.AllowEmpty,
		Force:            opts.ForceConflicts,
		Adopt:            opts.Adopt,
		DryRun:           opts.DryRun == "server",
		Wait:             opts.Wait,
		Timeout:          opts.Timeout,
		Progress:         progress.print,
	})
	return finishChangeSet(opts.IO, format, cs, applyErr)
}

// finishChangeSet prints what was done, even when something failed, then
// the error.
func finishChangeSet(streams IOStreams, format outputFormat, cs *deploy.ChangeSet, err error) error {
	if cs != nil {
		cs.Sort()
		if cs.Changes == nil {
			cs.Changes = []deploy.Change{} // [] in JSON, not null
		}
		if werr := writeChangeSet(streams.Out, format, cs); werr != nil && err == nil {
			err = werr
		}
		// A failure before any change is the error alone, not "nothing
		// to do" and then the error.
		if format == outputText && (err == nil || len(cs.Changes) > 0) {
			fmt.Fprintln(streams.ErrOut, summary(cs))
		}
	}
	return err
}
