package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/image"
	"github.com/kix-project/kix/internal/registry"
)

// Reasons of NixImage conditions and events.
const (
	ReasonPending     = "Pending"
	ReasonQueued      = "Queued"
	ReasonBuilding    = "Building"
	ReasonBuilt       = "Built"
	ReasonBuildFailed = "BuildFailed"
)

// NixImageReconciler builds NixImages: Pending (a new generation) →
// Building → Built (status.image names it by digest in kix registry) or
// Failed (status.message says why, with the end of the build log).
type NixImageReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Builder  ImageBuilder
	// Images computes the digest kix registry serves a spec with; it reads
	// the store the builds write to.
	Images *image.Builder
	// Registry is the host[:port] of kix registry, as pods pull from it.
	Registry   string
	PackageSet string
	// AllowedPackageSets may be named by spec.packageSet, beside
	// PackageSet; no other is built.
	AllowedPackageSets []string
	// MaxBuilds bounds concurrent builds (reconcile workers).
	MaxBuilds int
}

// SetupWithManager registers the reconciler: NixImages and the build Jobs
// they own. A NixImage wakes it when its spec changes, not when its status
// does: each reconcile writes the status, and woken by its own write it
// would read the cache before the write reached it, build again, and fail
// its update on a conflict.
func (r *NixImageReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.NixImage{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&batchv1.Job{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxBuilds, 1)}).
		Complete(r)
}

// Reconcile implements reconcile.Reconciler.
func (r *NixImageReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var img v1alpha1.NixImage
	if err := r.Client.Get(ctx, req.NamespacedName, &img); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err) // deleted: owned Jobs go with it
	}
	st := &img.Status
	current := st.ObservedGeneration == img.Generation
	if current && (st.Phase == v1alpha1.NixImageBuilt || st.Phase == v1alpha1.NixImageFailed) {
		return ctrl.Result{}, nil
	}
	if s, ok := r.Builder.(Superseder); ok && !current {
		if err := s.Supersede(ctx, &img); err != nil {
			return ctrl.Result{}, err
		}
	}
	if !current || st.Phase == "" {
		r.transition(&img, v1alpha1.NixImagePending, metav1.ConditionUnknown, ReasonPending, "waiting for a build")
		st.Image, st.StorePath = "", ""
		if err := r.Client.Status().Update(ctx, &img); err != nil {
			return ctrl.Result{}, err
		}
	}
	build := requestFor(&img, r.PackageSet)
	if why := r.refused(build); why != "" {
		r.transition(&img, v1alpha1.NixImageFailed, metav1.ConditionFalse, ReasonBuildFailed, why)
		return ctrl.Result{}, r.Client.Status().Update(ctx, &img)
	}
	if st.Phase == v1alpha1.NixImagePending {
		if a, ok := r.Builder.(Admitter); ok {
			admitted, why, err := a.Admit(ctx, &img, build)
			if err != nil {
				return ctrl.Result{}, err
			}
			if !admitted {
				return ctrl.Result{RequeueAfter: queuedRetry}, r.waiting(ctx, &img, ReasonQueued, why)
			}
		}
		r.transition(&img, v1alpha1.NixImageBuilding, metav1.ConditionUnknown, ReasonBuilding, "building "+joinContents(img.Spec.Contents))
		if err := r.Client.Status().Update(ctx, &img); err != nil {
			return ctrl.Result{}, err
		}
	}
	res, err := r.Builder.Build(ctx, &img, build)
	var be *BuildError
	switch {
	case errors.As(err, &be):
		r.transition(&img, v1alpha1.NixImageFailed, metav1.ConditionFalse, ReasonBuildFailed, be.Message)
		return ctrl.Result{}, r.Client.Status().Update(ctx, &img)
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("building %s/%s: %w", img.Namespace, img.Name, err)
	case res == nil:
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil // a Job builds; its changes wake us
	}
	ref, err := r.reference(ctx, res.StorePath)
	if err != nil {
		// Retried with back-off; meanwhile the status says why the image
		// is not Built yet (a store path this controller cannot read).
		return ctrl.Result{}, errors.Join(err, r.waiting(ctx, &img, ReasonBuilding, "built "+res.StorePath+", but not its image: "+err.Error()))
	}
	st.Image, st.StorePath = ref, res.StorePath
	r.transition(&img, v1alpha1.NixImageBuilt, metav1.ConditionTrue, ReasonBuilt, builtMessage(res.Took, ref))
	return ctrl.Result{}, r.Client.Status().Update(ctx, &img)
}

// builtMessage says what was built and, if known, how long the build took.
func builtMessage(took time.Duration, ref string) string {
	if took == 0 {
		return "built: " + ref
	}
	return "built in " + took.Round(time.Second).String() + ": " + ref
}

// refused says why a request is not built, whatever the builder: it names
// no package set, or one the controller was not allowed to build (building
// a package set runs its code with the controller's rights, so tenants pick
// among the ones the administrator named).
func (r *NixImageReconciler) refused(build image.PackageRequest) string {
	switch {
	case build.PackageSet == "":
		return "no package set: give the controller --package-set or the NixImage spec.packageSet"
	case build.PackageSet != r.PackageSet && !slices.Contains(r.AllowedPackageSets, build.PackageSet):
		return fmt.Sprintf("package set %q is not one the controller builds (its --package-set or --allow-package-set)", build.PackageSet)
	}
	return ""
}

// queuedRetry is how often a queued image asks for a build slot again
// (finished Jobs also wake images, their own only).
const queuedRetry = 5 * time.Second

// waiting records why an image waits (Pending and Queued for a build slot,
// or Building while its image cannot be made), without an event: it may
// wait through many reconciles.
func (r *NixImageReconciler) waiting(ctx context.Context, img *v1alpha1.NixImage, reason, why string) error {
	if img.Status.Message == why {
		return nil
	}
	img.Status.Message = why
	meta.SetStatusCondition(&img.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionUnknown, Reason: reason, Message: truncate(why, 1024), ObservedGeneration: img.Generation,
	})
	return r.Client.Status().Update(ctx, img)
}

// reference is the pullable reference of a built spec: kix registry's
// repository for the store path, by the digest it serves.
func (r *NixImageReconciler) reference(ctx context.Context, storePath string) (string, error) {
	a, err := r.Images.Build(ctx, storePath)
	if err != nil {
		return "", fmt.Errorf("assembling the image of %s: %w", storePath, err)
	}
	return r.Registry + "/" + registry.Repository(storePath) + "@" + a.Manifest(false).Digest.String(), nil
}

// transition sets the phase, the Ready condition and the message, and
// records an event.
func (r *NixImageReconciler) transition(img *v1alpha1.NixImage, phase v1alpha1.NixImagePhase, ready metav1.ConditionStatus, reason, msg string) {
	st := &img.Status
	st.Phase, st.Message, st.ObservedGeneration = phase, msg, img.Generation
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: ready, Reason: reason, Message: truncate(msg, 1024), ObservedGeneration: img.Generation,
	})
	kind := corev1.EventTypeNormal
	if phase == v1alpha1.NixImageFailed {
		kind = corev1.EventTypeWarning
	}
	if r.Recorder != nil {
		r.Recorder.Eventf(img, nil, kind, reason, string(phase), "%s", truncate(msg, 1024))
	}
}

func joinContents(c []string) string {
	s := ""
	for i, x := range c {
		if i > 0 {
			s += ", "
		}
		s += x
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n+1:]
}
