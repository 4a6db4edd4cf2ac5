package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kix-project/kix/internal/csi"
	"github.com/kix-project/kix/internal/image"
	"github.com/kix-project/kix/internal/nix"
)

// CSIOptions are the flags of `kix csi`.
type CSIOptions struct {
	IO           IOStreams
	Endpoint     string
	NodeID       string
	StateDir     string
	KubeletDir   string
	Substituters []string
	TrustedKeys  []string
	System       string
	Parallel     int
}

// NewCmdCSI builds `kix csi`, the CSI node plugin.
func NewCmdCSI(streams IOStreams) *cobra.Command {
	opts := &CSIOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "csi",
		Short: "Run the CSI node plugin that mounts store path closures into pods (driver csi.kix.dev)",
		Long: `Run the CSI node plugin csi.kix.dev. A pod's inline volume names store
paths, for every system (storePath, storePaths) or per Nix system
(x86_64-linux: /nix/store/...); the node fetches their closure from the
substituters, verifies narinfo signatures against the trusted keys and each
NAR's hash, keeps one copy of each path in --state-dir shared by all volumes,
and bind-mounts a read-only view holding exactly the closure under store/.
Mount the volume at /nix and the container image can be empty.

The plugin registers itself with the kubelet through
<kubelet-dir>/plugins_registry (no sidecar). The cluster needs the CSIDriver
object csi.kix.dev with volumeLifecycleModes [Ephemeral] (deploy/csi.nix).`,
		Example: `  kix csi --endpoint unix:///var/lib/kubelet/plugins/csi.kix.dev/csi.sock \
    --node-id "$NODE_NAME" --state-dir /var/lib/kix-csi \
    --substituter http://kix-cache.kix.svc:8080 \
    --trusted-public-key "$(cat cache.pub)"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return csiRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.Endpoint, "endpoint", "unix:///var/lib/kubelet/plugins/"+csi.DriverName+"/csi.sock", "CSI endpoint (a unix socket the kubelet can reach)")
	fs.StringVar(&opts.NodeID, "node-id", os.Getenv("NODE_NAME"), "the node's name (default $NODE_NAME)")
	fs.StringVar(&opts.StateDir, "state-dir", "/var/lib/kix-csi", "folder for the node's store paths and the volumes' views")
	fs.StringVar(&opts.KubeletDir, "kubelet-dir", "/var/lib/kubelet", "the kubelet's root folder, to register in its plugins_registry (empty: do not register)")
	fs.StringVar(&opts.System, "system", image.CurrentSystem(), "the node's Nix system, for volumes that name paths per system")
	opts.addFetchFlags(cmd)
	cmd.AddCommand(newCmdCSIFetch(streams))
	return cmd
}

func (o *CSIOptions) addFetchFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringArrayVar(&o.Substituters, "substituter", nil, "binary cache URL to fetch store paths from (repeatable, tried in order)")
	fs.StringArrayVar(&o.TrustedKeys, "trusted-public-key", nil, "public key (name:base64) narinfos must be signed with (repeatable)")
	fs.IntVar(&o.Parallel, "parallel", 8, "store paths fetched at once")
}

func (o *CSIOptions) check() error {
	switch {
	case len(o.Substituters) == 0:
		return usageErrorf("give at least one --substituter")
	case len(o.TrustedKeys) == 0:
		return usageErrorf("give at least one --trusted-public-key: fetched paths are verified")
	case o.Parallel < 1:
		return usageErrorf("--parallel must be at least 1")
	}
	return nil
}

func csiRun(ctx context.Context, opts *CSIOptions) error {
	if err := opts.check(); err != nil {
		return err
	}
	if opts.NodeID == "" {
		return usageErrorf("give --node-id (or set NODE_NAME)")
	}
	d, err := csi.New(csi.Options{
		NodeID:       opts.NodeID,
		StateDir:     opts.StateDir,
		Substituters: opts.Substituters,
		TrustedKeys:  opts.TrustedKeys,
		System:       opts.System,
		Parallel:     opts.Parallel,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "kix csi %s on %s, node %s, state in %s\n", csi.DriverName, opts.Endpoint, opts.NodeID, opts.StateDir)
	return d.Serve(ctx, opts.Endpoint, opts.KubeletDir)
}

// newCmdCSIFetch builds `kix csi fetch`, hidden: the plugin's fetch path
// alone, for benchmarks. (What it fetches is not kept: the plugin's
// garbage collection removes paths no mounted volume holds.)
func newCmdCSIFetch(streams IOStreams) *cobra.Command {
	opts := &CSIOptions{IO: streams}
	cmd := &cobra.Command{
		Use:    "fetch STORE_PATH...",
		Short:  "Fetch the closure of store paths into the node's store folder, as publishing a volume does",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return csiFetchRun(cmd.Context(), opts, args)
		},
	}
	cmd.Flags().StringVar(&opts.StateDir, "state-dir", "/var/lib/kix-csi", "the node's state folder")
	opts.addFetchFlags(cmd)
	return cmd
}

func csiFetchRun(ctx context.Context, opts *CSIOptions, paths []string) error {
	if err := opts.check(); err != nil {
		return err
	}
	for i, p := range paths {
		sp, err := nix.ParseStorePath(p)
		if err != nil {
			return usageError{err}
		}
		paths[i] = sp
	}
	store, err := csi.OpenStore(csi.Options{
		StateDir:     opts.StateDir,
		Substituters: opts.Substituters,
		TrustedKeys:  opts.TrustedKeys,
		Parallel:     opts.Parallel,
	})
	if err != nil {
		return err
	}
	start := time.Now()
	closure, err := store.Fetch(ctx, paths)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "%d store paths in %s (%.2f s)\n", len(closure), opts.StateDir, time.Since(start).Seconds())
	return nil
}
