package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/catalog"
	"github.com/kix-project/kix/internal/deploy"
	"github.com/kix-project/kix/internal/eval"
	"github.com/kix-project/kix/internal/nix"
)

// Reasons of Installation conditions.
const (
	ReasonApplied         = "Applied"
	ReasonBlockNotFound   = "BlockNotFound"
	ReasonCustomizeFailed = "CustomizeFailed"
	ReasonApplyFailed     = "ApplyFailed"
	ReasonNotCustomizable = "NotCustomizable"
	ReasonDeleteFailed    = "DeleteFailed"
	// ReasonInvalidServiceAccount: the service account to apply as has a
	// name no service account can have.
	ReasonInvalidServiceAccount = "InvalidServiceAccount"
)

// Labels on the objects an Installation applies; they lead watches back to
// it. The Installation's is its name's labelValue.
const (
	LabelInstallation          = "kix.dev/installation"
	LabelInstallationNamespace = "kix.dev/installation-namespace"
	installationFinalizer      = "kix.dev/installation"
)

// InstallationReconciler applies the BuildingBlock an Installation names,
// customised with its values, under an inventory of its own, and keeps it
// applied: on a schedule and whenever one of its objects changes, so hand
// edits are reverted; a new version prunes what it dropped; deleting the
// Installation deletes its objects first (finalizer).
//
// The block's objects are applied, pruned and deleted as the
// Installation's service account (see serviceAccountUser), so an
// Installation can do no more than that account may; the catalogue is read
// and the status written with the controller's own rights.
type InstallationReconciler struct {
	Client client.Client
	// APIReader reads what the manager does not cache (namespaces); Client
	// if nil.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Deployers *Deployers
	// DefaultServiceAccount is the service account, in an Installation's
	// namespace, of Installations that name none; if empty, they are
	// applied with the controller's own rights.
	DefaultServiceAccount string
	// Resync is how often an applied Installation is applied again.
	Resync time.Duration
}

// Reconcile implements reconcile.Reconciler.
func (r *InstallationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var inst v1alpha1.Installation
	if err := r.Client.Get(ctx, req.NamespacedName, &inst); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	inv := deploy.Inventory{Name: inventoryName(&inst), Namespace: inst.Namespace}
	if !inst.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.uninstall(ctx, &inst, inv)
	}
	if controllerutil.AddFinalizer(&inst, installationFinalizer) {
		if err := r.Client.Update(ctx, &inst); err != nil {
			return ctrl.Result{}, err
		}
	}
	user, err := serviceAccountUser(&inst, r.DefaultServiceAccount)
	var block *v1alpha1.BuildingBlock
	if err == nil {
		block, err = r.block(ctx, &inst)
	}
	if err != nil {
		var cond *conditionError
		if !errors.As(err, &cond) {
			return ctrl.Result{}, err
		}
		statusErr := r.notReady(ctx, &inst, cond.reason, cond.Error())
		if cond.retry {
			return ctrl.Result{}, errors.Join(err, statusErr) // retried with back-off
		}
		// Not worth retrying until the spec or the catalogue changes;
		// both are watched.
		return ctrl.Result{}, statusErr
	}
	res, err := eval.Evaluate(ctx, eval.Options{File: block.Spec.Manifests})
	if err != nil {
		return ctrl.Result{}, errors.Join(err, r.notReady(ctx, &inst, ReasonApplyFailed, err.Error()))
	}
	dm, err := r.Deployers.As(user)
	if err != nil {
		return ctrl.Result{}, err
	}
	cs, err := dm.Apply(ctx, res.Objects, deploy.ApplyOptions{
		DefaultNamespace: inst.Namespace,
		Inventory:        &inv,
		Prune:            true,
		AllowEmpty:       true,
		Force:            true, // the Installation owns its objects: hand edits are reverted
		Labels:           map[string]string{LabelInstallation: labelValue(inst.Name), LabelInstallationNamespace: inst.Namespace},
	})
	// Kept on the Installation too, even after a failed apply (which may
	// have recorded new kinds): an uninstall may find the inventory gone.
	if rec, recErr := dm.Recorded(ctx, inv); recErr == nil && rec != nil {
		inst.Status.Recorded = recordOf(rec)
	}
	if err != nil {
		// Retried with back-off: the cluster may come round.
		return ctrl.Result{}, errors.Join(err, r.notReady(ctx, &inst, ReasonApplyFailed, err.Error()))
	}
	return ctrl.Result{RequeueAfter: r.Resync}, r.applied(ctx, &inst, block, inv, cs)
}

// conditionError is a failure the status reports: one the spec or the
// catalogue must fix, or, if retry is set, one that may pass if tried
// again.
type conditionError struct {
	reason string
	msg    string
	retry  bool
}

func (e *conditionError) Error() string { return e.msg }

// block finds the BuildingBlock to apply: the catalogue's, or with values
// the tenant's own customisation of it, made on first use.
func (r *InstallationReconciler) block(ctx context.Context, inst *v1alpha1.Installation) (*v1alpha1.BuildingBlock, error) {
	var published v1alpha1.BuildingBlock
	name := catalog.ObjectName(inst.Spec.Block, inst.Spec.Version)
	err := r.Client.Get(ctx, client.ObjectKey{Name: name}, &published)
	if client.IgnoreNotFound(err) != nil {
		return nil, err
	}
	// Only a published block of exactly this name and version: not another
	// tenant's customisation, nor a block whose object name merely collides.
	if err != nil || published.Spec.Owner != nil || published.Spec.Block != inst.Spec.Block || published.Spec.Version != inst.Spec.Version {
		return nil, &conditionError{reason: ReasonBlockNotFound, msg: fmt.Sprintf("the catalogue has no block %s version %s (kubectl get buildingblocks lists it)", inst.Spec.Block, inst.Spec.Version)}
	}
	if inst.Spec.Values == nil || len(inst.Spec.Values.Raw) == 0 {
		return &published, nil
	}
	if published.Spec.Source == nil {
		return nil, &conditionError{reason: ReasonNotCustomizable, msg: fmt.Sprintf("block %s version %s takes no values", inst.Spec.Block, inst.Spec.Version)}
	}
	ownName := tenantBlockName(inst, name)
	var own v1alpha1.BuildingBlock
	err = r.Client.Get(ctx, client.ObjectKey{Name: ownName}, &own)
	exists := err == nil
	// A tenant block is made again when the provider republished the
	// version from another source.
	if exists && own.Spec.Manifests != "" && equality.Semantic.DeepEqual(own.Spec.Source, published.Spec.Source) {
		return &own, nil
	}
	if client.IgnoreNotFound(err) != nil {
		return nil, err
	}
	manifests, err := catalog.Customize(ctx, *published.Spec.Source, inst.Spec.Values.Raw)
	if err != nil {
		return nil, &conditionError{reason: ReasonCustomizeFailed, msg: fmt.Sprintf("customising %s with the values: %v", name, err), retry: transient(err)}
	}
	own.Name = ownName
	own.Labels = map[string]string{
		catalog.LabelBlock: published.Labels[catalog.LabelBlock], catalog.LabelVersion: published.Labels[catalog.LabelVersion],
		catalog.LabelOwnerNS: inst.Namespace, catalog.LabelOwnerName: labelValue(inst.Name),
	}
	own.Spec = published.Spec
	own.Spec.Manifests = manifests
	own.Spec.Owner = &v1alpha1.BlockOwner{Namespace: inst.Namespace, Installation: inst.Name}
	own.Spec.Values = inst.Spec.Values.DeepCopy()
	if exists {
		err = r.Client.Update(ctx, &own)
	} else {
		err = r.Client.Create(ctx, &own)
	}
	if err != nil {
		return nil, err
	}
	r.event(inst, corev1.EventTypeNormal, "Customized", "built %s from %s with the Installation's values", ownName, name)
	// The blocks of earlier values go now, not once an apply succeeds:
	// an Installation whose applies are refused keeps one block however
	// often its values change.
	if err := r.removeOtherTenantBlocks(ctx, inst, ownName); err != nil {
		return nil, err
	}
	return &own, nil
}

// inventoryName names an Installation's inventory: kix-installation-<name>,
// shortened if that is longer than an object's name may be.
func inventoryName(inst *v1alpha1.Installation) string {
	return shorten("kix-installation-"+inst.Name, validation.DNS1123SubdomainMaxLength)
}

// transient reports whether a failed customisation may pass if tried
// again: Nix could not start, was stopped (a deadline), or was killed by a
// signal (the OOM killer), rather than exiting with an evaluation error,
// which the same values and source would meet again.
func transient(err error) bool {
	var notStarted *exec.Error
	var failed *nix.CommandError
	var exit *exec.ExitError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.As(err, &notStarted):
		return true
	case errors.As(err, &failed) && errors.As(failed.Err, &exit):
		return exit.ExitCode() < 0
	}
	return false
}

// tenantBlockName names an Installation's own customisation of a block:
// the block, then a hash of the Installation and its values.
func tenantBlockName(inst *v1alpha1.Installation, block string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s/%s\n%s", inst.Namespace, inst.Name, inst.Spec.Values.Raw)
	return shorten(block+"-"+hex.EncodeToString(h.Sum(nil))[:10], validation.DNS1123SubdomainMaxLength)
}

func (r *InstallationReconciler) applied(ctx context.Context, inst *v1alpha1.Installation, block *v1alpha1.BuildingBlock, inv deploy.Inventory, cs *deploy.ChangeSet) error {
	st := &inst.Status
	objects := len(cs.Changes) - cs.Count(deploy.Pruned) - cs.Count(deploy.Kept)
	changed := cs.Count(deploy.Created) + cs.Count(deploy.Configured) + cs.Count(deploy.Pruned)
	now := metav1.Now()
	st.BuildingBlock, st.StorePath, st.Inventory = block.Name, block.Spec.Manifests, inv.Namespace+"/"+inv.Name
	st.Objects, st.Pruned, st.LastApplied, st.ObservedGeneration = objects, cs.Count(deploy.Pruned), &now, inst.Generation
	msg := fmt.Sprintf("%s: %d objects (%s)", block.Name, objects, cs.Summary())
	was := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonApplied, Message: msg, ObservedGeneration: inst.Generation})
	if changed > 0 || was == nil || was.Status != metav1.ConditionTrue {
		r.event(inst, corev1.EventTypeNormal, ReasonApplied, "%s", msg)
	}
	if err := r.removeOtherTenantBlocks(ctx, inst, block.Name); err != nil {
		return err
	}
	return r.Client.Status().Update(ctx, inst)
}

// notReady records a failure in the Ready condition (and an event when it
// is news), leaving what was applied alone.
func (r *InstallationReconciler) notReady(ctx context.Context, inst *v1alpha1.Installation, reason, msg string) error {
	was := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
	if was == nil || was.Reason != reason || was.Message != truncate(msg, 1024) {
		r.event(inst, corev1.EventTypeWarning, reason, "%s", truncate(msg, 1024))
	}
	inst.Status.ObservedGeneration = inst.Generation
	meta.SetStatusCondition(&inst.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason, Message: truncate(msg, 1024), ObservedGeneration: inst.Generation,
	})
	return r.Client.Status().Update(ctx, inst)
}

// reader reads what the manager does not cache: APIReader, or Client.
func (r *InstallationReconciler) reader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// removeOtherTenantBlocks deletes the Installation's own blocks except
// keep (values changed, or the Installation is gone). The labels find
// them; spec.owner tells them from another Installation's whose name has
// the same label value.
func (r *InstallationReconciler) removeOtherTenantBlocks(ctx context.Context, inst *v1alpha1.Installation, keep string) error {
	var blocks v1alpha1.BuildingBlockList
	if err := r.Client.List(ctx, &blocks, client.MatchingLabels{catalog.LabelOwnerNS: inst.Namespace, catalog.LabelOwnerName: labelValue(inst.Name)}); err != nil {
		return err
	}
	for i := range blocks.Items {
		b := &blocks.Items[i]
		if owner := b.Spec.Owner; b.Name == keep || owner == nil || owner.Namespace != inst.Namespace || owner.Installation != inst.Name {
			continue
		}
		if err := r.Client.Delete(ctx, b); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}

func (r *InstallationReconciler) event(inst *v1alpha1.Installation, kind, reason, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(inst, nil, kind, reason, reason, format, args...)
	}
}
