package controller

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/image"
)

// Options configure kix controller.
type Options struct {
	// MetricsAddr and HealthAddr serve /metrics and /healthz, /readyz;
	// "0" turns one off.
	MetricsAddr string
	HealthAddr  string
	// LeaderElection makes one replica of several do the work.
	LeaderElection          bool
	LeaderElectionNamespace string

	PackageSet string
	// AllowedPackageSets are the package sets a NixImage's spec.packageSet
	// may name, beside PackageSet.
	AllowedPackageSets []string
	Registry           string
	MaxBuilds          int
	// Builder builds NixImages; NixBuilder if nil.
	Builder ImageBuilder
	// Images computes image digests from the store builds write to.
	Images *image.Builder
	// Resync re-applies Installations this often.
	Resync time.Duration
	// DefaultServiceAccount is the service account, in an Installation's
	// namespace, whose rights Installations naming none are applied with;
	// if empty, they are applied with the controller's own rights.
	DefaultServiceAccount string
}

// Scheme holds the types kix controller works with.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}

// Watched kinds an Installation's objects often are: a change to one
// wakes its Installation at once (others are caught by the resync).
var watchedKinds = []schema.GroupVersionKind{
	corev1.SchemeGroupVersion.WithKind("ConfigMap"),
	corev1.SchemeGroupVersion.WithKind("Secret"),
	corev1.SchemeGroupVersion.WithKind("Service"),
	corev1.SchemeGroupVersion.WithKind("ServiceAccount"),
	appsv1.SchemeGroupVersion.WithKind("Deployment"),
	appsv1.SchemeGroupVersion.WithKind("StatefulSet"),
	appsv1.SchemeGroupVersion.WithKind("DaemonSet"),
}

// Indexes of Installations: by spec.block, and by the label value of
// their name.
const (
	blockIndex = "spec.block"
	labelIndex = "installation.labelValue"
)

// NewManager sets up a controller-runtime manager with kix's reconcilers.
func NewManager(cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	owned, err := labels.NewRequirement(LabelInstallation, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	byObject := map[client.Object]cache.ByObject{}
	for _, gvk := range watchedKinds {
		byObject[metadataOf(gvk)] = cache.ByObject{Label: labels.NewSelector().Add(*owned)}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  Scheme(),
		Metrics:                 metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:  opts.HealthAddr,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        "kix-controller.kix.dev",
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
		Cache:                   cache.Options{ByObject: byObject},
		// Controller names are unique per manager; a process embedding
		// several managers (tests, a second cluster) stays valid.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	builderImpl := opts.Builder
	if builderImpl == nil {
		builderImpl = NixBuilder{}
	}
	if jobs, ok := builderImpl.(*JobBuilder); ok {
		jobs.Client, jobs.Reader, jobs.Max = mgr.GetClient(), mgr.GetAPIReader(), opts.MaxBuilds
	}
	images := &NixImageReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("kix-controller"), Builder: builderImpl,
		Images: opts.Images, Registry: opts.Registry, PackageSet: opts.PackageSet, MaxBuilds: opts.MaxBuilds,
		AllowedPackageSets: opts.AllowedPackageSets,
	}
	if err := images.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	installs := &InstallationReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("kix-controller"),
		Deployers: NewDeployers(cfg), DefaultServiceAccount: opts.DefaultServiceAccount, Resync: opts.Resync,
	}
	if err := installs.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	return mgr, nil
}

func metadataOf(gvk schema.GroupVersionKind) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gvk)
	return m
}

// SetupWithManager registers the reconciler: Installations, the
// catalogue's BuildingBlocks (a published block wakes Installations of
// it), and the objects Installations own.
func (r *InstallationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.Installation{}, blockIndex, func(o client.Object) []string {
		return []string{o.(*v1alpha1.Installation).Spec.Block}
	})
	if err != nil {
		return err
	}
	err = mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.Installation{}, labelIndex, func(o client.Object) []string {
		return []string{labelValue(o.GetName())}
	})
	if err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Installation{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, deletionStarted))).
		Watches(&v1alpha1.BuildingBlock{}, handler.EnqueueRequestsFromMapFunc(r.installationsOfBlock))
	for _, gvk := range watchedKinds {
		var opts []builder.WatchesOption
		if gvk.Group == appsv1.GroupName {
			opts = append(opts, builder.WithPredicates(workloadDrift))
		}
		b = b.WatchesMetadata(metadataOf(gvk), handler.EnqueueRequestsFromMapFunc(r.ownerInstallation), opts...)
	}
	return b.Named("installation").Complete(r)
}

// workloadDrift lets through the changes to an owned Deployment,
// StatefulSet or DaemonSet that can undo what its Installation applied: a
// new generation (the spec changed), labels, annotations, deletion. Their
// status changes with every rollout and scaling step, and each change
// would otherwise apply the whole Installation again. The other watched
// kinds have no generation to tell spec from status (or no status), so all
// their changes count.
var workloadDrift = predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{},
	predicate.AnnotationChangedPredicate{}, deletionStarted)

// deletionStarted lets an Installation's deletion through.
var deletionStarted = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	return !e.ObjectNew.GetDeletionTimestamp().IsZero()
}}

// installationsOfBlock maps a BuildingBlock to the Installations it
// concerns: a tenant's own block to its Installation, a catalogue block to
// every Installation of that block name.
func (r *InstallationReconciler) installationsOfBlock(ctx context.Context, o client.Object) []reconcile.Request {
	bb := o.(*v1alpha1.BuildingBlock)
	if owner := bb.Spec.Owner; owner != nil {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: owner.Namespace, Name: owner.Installation}}}
	}
	var list v1alpha1.InstallationList
	if err := r.Client.List(ctx, &list, client.MatchingFields{blockIndex: bb.Spec.Block}); err != nil {
		// The resync reconciles them later.
		ctrl.LoggerFrom(ctx).Error(err, "finding the Installations of a block", "block", bb.Spec.Block)
		return nil
	}
	var reqs []reconcile.Request
	for _, inst := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&inst)})
	}
	return reqs
}

// ownerInstallation maps an applied object to its Installation by label:
// the Installations of that namespace whose name has the label's value
// (rarely more than one; each is reconciled).
func (r *InstallationReconciler) ownerInstallation(ctx context.Context, o client.Object) []reconcile.Request {
	value, ns := o.GetLabels()[LabelInstallation], o.GetLabels()[LabelInstallationNamespace]
	if value == "" || ns == "" {
		return nil
	}
	var list v1alpha1.InstallationList
	if err := r.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{labelIndex: value}); err != nil {
		// The resync reconciles it later.
		ctrl.LoggerFrom(ctx).Error(err, "finding the Installation of an object", "object", client.ObjectKeyFromObject(o))
		return nil
	}
	var reqs []reconcile.Request
	for _, inst := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&inst)})
	}
	return reqs
}
