package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kix-project/kix/internal/controller"
	"github.com/kix-project/kix/internal/nix"
)

// ControllerOptions are the flags of `kix controller`.
type ControllerOptions struct {
	IO IOStreams
	kubeOptions
	storeOptions
	PackageSet        string
	AllowPackageSets  []string
	Registry          string
	MetricsAddr       string
	HealthAddr        string
	LeaderElect       bool
	LeaderElectionNS  string
	MaxBuilds         int
	Resync            time.Duration
	DefaultSA         string
	BuilderKind       string
	BuildJobImage     string
	BuildJobCommand   string
	BuildJobHostRoot  bool
	BuildJobTimeout   time.Duration
	BuildJobNixConfig string
}

// NewCmdController builds `kix controller`.
func NewCmdController(streams IOStreams) *cobra.Command {
	opts := &ControllerOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the controller for NixImages and Installations",
		Long: `Run kix's controller (controller-runtime, with leader election, /healthz,
/readyz and Prometheus /metrics):

  NixImage       builds an image of packages from --package-set (or the
                 image's spec.packageSet) and names it in status.image by
                 digest in kix registry at --registry; Pending, Building,
                 Built or Failed, with events for each.
  Installation   applies a BuildingBlock of the catalogue (kix catalog
                 publish), customised with its values, and keeps it applied:
                 hand edits are reverted, upgrades prune, deletes clean up.
                 Its objects are written as its spec.serviceAccountName,
                 or --default-service-account: without either, with this
                 controller's own rights, so set it when tenants may create
                 Installations.

Builds run with this machine's Nix (--builder nix), which must share its
store with kix registry, or each in a Kubernetes Job (--builder job).`,
		Example: `  kix controller --package-set ./pkgs.nix --registry kix-registry.kix.svc:5000`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return controllerRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	opts.addKubeFlags(fs)
	opts.addImageFlags(fs)
	fs.StringVar(&opts.PackageSet, "package-set", "", "Nix file or flake whose attributes NixImages' contents name")
	fs.StringArrayVar(&opts.AllowPackageSets, "allow-package-set", nil, "a package set NixImages' spec.packageSet may name, beside --package-set (repeatable; building one runs its code with the controller's rights)")
	fs.StringVar(&opts.Registry, "registry", "", "host[:port] of kix registry serving the built images, as nodes pull them (required)")
	fs.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8080", `address of /metrics; "0" for none`)
	fs.StringVar(&opts.HealthAddr, "health-probe-bind-address", ":8081", `address of /healthz and /readyz; "0" for none`)
	fs.BoolVar(&opts.LeaderElect, "leader-elect", false, "elect a leader among replicas (a Lease)")
	fs.StringVar(&opts.LeaderElectionNS, "leader-election-namespace", "", "namespace of the leader Lease (default: the pod's)")
	fs.IntVar(&opts.MaxBuilds, "max-builds", 2, "NixImages built at once (with --builder job: build Jobs running at once; others wait, Pending)")
	fs.DurationVar(&opts.Resync, "resync", 5*time.Minute, "how often Installations are applied again (reverting hand edits)")
	fs.StringVar(&opts.DefaultSA, "default-service-account", "", "service account, in the Installation's namespace, whose rights Installations without spec.serviceAccountName are applied with; if empty, they get the controller's own rights (set it when tenants may create Installations)")
	fs.StringVar(&opts.BuilderKind, "builder", "nix", "where NixImages are built: nix (here) or job (a Kubernetes Job per build)")
	fs.StringVar(&opts.BuildJobImage, "build-job-image", "", "--builder job: the image that runs kix image build")
	fs.StringVar(&opts.BuildJobCommand, "build-job-command", "kix", "--builder job: how to run kix in that image (space-separated)")
	fs.BoolVar(&opts.BuildJobHostRoot, "build-job-host-root", false, "--builder job: mount the node's / at /host, privileged, to build with the node's Nix")
	fs.DurationVar(&opts.BuildJobTimeout, "build-job-timeout", 2*time.Hour, "--builder job: fail a build Job not finished by then (a pod that never schedules or pulls its image); 0 for none")
	fs.StringVar(&opts.BuildJobNixConfig, "build-job-nix-conf-dir", "", "--builder job: NIX_CONF_DIR for the build")
	return cmd
}

func controllerRun(ctx context.Context, opts *ControllerOptions) error {
	if opts.Registry == "" {
		return usageErrorf("--registry is required: status.image names images there")
	}
	if errs := validation.IsDNS1123Subdomain(opts.DefaultSA); opts.DefaultSA != "" && len(errs) > 0 {
		return usageErrorf("--default-service-account %q is not a service account's name: %s", opts.DefaultSA, strings.Join(errs, "; "))
	}
	cfg, err := opts.restConfig(opts.IO.ErrOut)
	if err != nil {
		return err
	}
	images, err := opts.builder(nix.NewLocalStore())
	if err != nil {
		return err
	}
	ctrl.SetLogger(logr.FromSlogHandler(slog.Default().Handler()))
	copts := controller.Options{
		MetricsAddr: opts.MetricsAddr, HealthAddr: opts.HealthAddr,
		LeaderElection: opts.LeaderElect, LeaderElectionNamespace: opts.LeaderElectionNS,
		PackageSet: opts.PackageSet, AllowedPackageSets: opts.AllowPackageSets, Registry: opts.Registry, MaxBuilds: opts.MaxBuilds,
		Images: images, Resync: opts.Resync, DefaultServiceAccount: opts.DefaultSA,
	}
	switch opts.BuilderKind {
	case "nix":
	case "job":
		if copts.Builder, err = opts.jobBuilder(cfg); err != nil {
			return err
		}
	default:
		return usageErrorf(`--builder must be "nix" or "job", not %q`, opts.BuilderKind)
	}
	mgr, err := controller.NewManager(cfg, copts)
	if err != nil {
		return err
	}
	fmt.Fprintln(opts.IO.ErrOut, "kix controller started")
	return mgr.Start(ctx)
}

// jobBuilder is the --builder job builder; NewManager gives it its
// clients.
func (opts *ControllerOptions) jobBuilder(cfg *rest.Config) (*controller.JobBuilder, error) {
	if opts.BuildJobImage == "" {
		return nil, usageErrorf("--builder job needs --build-job-image")
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	jb := &controller.JobBuilder{Logs: clientset, Image: opts.BuildJobImage, Command: strings.Fields(opts.BuildJobCommand), HostRoot: opts.BuildJobHostRoot, Node: os.Getenv("NODE_NAME"), Timeout: opts.BuildJobTimeout}
	if opts.BuildJobNixConfig != "" {
		jb.Env = []corev1.EnvVar{{Name: "NIX_CONF_DIR", Value: opts.BuildJobNixConfig}}
	}
	return jb, nil
}
