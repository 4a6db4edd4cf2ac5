package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
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
		if errors.As(err, &cond) && cond.retry {
			// Said in the status, and retried with back-off.
			return ctrl.Result{}, errors.Join(err, r.notReady(ctx, &inst, cond.reason, cond.Error()))
		}
		if cond != nil {
			// Not worth retrying until the spec or the catalogue changes;
			// both are watched.
			return ctrl.Result{}, r.notReady(ctx, &inst, cond.reason, cond.Error())
		}
		return ctrl.Result{}, err
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

// uninstall deletes what the Installation applied, its own blocks, and
// then lets it go. A delete the server refuses, or a member the prune keeps
// for what is beside it (see keptAtUninstall), is recorded in the Ready
// condition (DeleteFailed) and retried, unless the namespace is being
// deleted and nothing refused or kept lies outside it (see outside): then
// it lets go with a warning event, the namespace's deletion removing the
// objects in it.
func (r *InstallationReconciler) uninstall(ctx context.Context, inst *v1alpha1.Installation, inv deploy.Inventory) error {
	if !controllerutil.ContainsFinalizer(inst, installationFinalizer) {
		return nil
	}
	err := r.removeObjects(ctx, inst, inv)
	var cond *conditionError
	if errors.As(err, &cond) {
		// Kept until the spec names a service account that may delete
		// the objects; the spec is watched.
		return r.notReady(ctx, inst, ReasonDeleteFailed, err.Error())
	}
	if err != nil {
		err = fmt.Errorf("removing the objects of %s/%s: %w", inst.Namespace, inst.Name, err)
		terminating, nsErr := r.namespaceTerminating(ctx, inst.Namespace)
		// Refused deletes, and members kept for what is beside them, are
		// let go with the namespace if it takes them all.
		excusable := apierrors.IsForbidden(err) || errors.As(err, new(*keptError))
		var outside []string
		if terminating && excusable {
			outside, nsErr = r.outside(ctx, inst, inv, err)
		}
		if !excusable || !terminating || len(outside) > 0 || nsErr != nil {
			// The finalizer stays and the delete is retried with
			// back-off, until the service account may delete the objects
			// (or the Installation names one that may).
			if len(outside) > 0 {
				err = fmt.Errorf("%w; the namespace's deletion does not take %s", err, strings.Join(outside, ", "))
			}
			return errors.Join(err, nsErr, r.notReady(ctx, inst, ReasonDeleteFailed, err.Error()))
		}
		// The namespace's deletion takes what is in it, and may already
		// have taken the service account's rights: waiting for them
		// would keep the namespace forever. A namespace being deleted
		// refuses new events, so the log says it too.
		ctrl.LoggerFrom(ctx).Info("letting an Installation go without deleting its objects: its namespace is being deleted", "error", err.Error())
		r.event(inst, corev1.EventTypeWarning, ReasonDeleteFailed, "%s; the namespace is being deleted, so the Installation goes without", truncate(err.Error(), 1024))
	}
	if err := r.removeOtherTenantBlocks(ctx, inst, ""); err != nil {
		return err
	}
	if err == nil {
		r.event(inst, corev1.EventTypeNormal, "Uninstalled", "removed the objects of %s", inv.Namespace+"/"+inv.Name)
	}
	controllerutil.RemoveFinalizer(inst, installationFinalizer)
	return r.Client.Update(ctx, inst)
}

// removeObjects deletes, as the Installation's service account, what it
// applied and its inventory; nil if that is done or nothing was ever
// applied. An account refused even the inventory, or one that cannot be
// impersonated, does not tell whether anything was applied; the
// controller's own read of the inventory does.
func (r *InstallationReconciler) removeObjects(ctx context.Context, inst *v1alpha1.Installation, inv deploy.Inventory) error {
	user, err := serviceAccountUser(inst, r.DefaultServiceAccount)
	if err == nil {
		var dm *deploy.Manager
		if dm, err = r.Deployers.As(user); err != nil {
			return err
		}
		var cs *deploy.ChangeSet
		cs, err = dm.Prune(ctx, nil, deploy.ApplyOptions{DefaultNamespace: inst.Namespace, Inventory: &inv, AllowEmpty: true})
		if err == nil {
			err = r.keptAtUninstall(inst, cs)
		}
	}
	if err == nil || errors.Is(err, deploy.ErrNoInventory) {
		return nil
	}
	if errors.As(err, new(*keptError)) {
		return err
	}
	var cond *conditionError
	if !apierrors.IsForbidden(err) && !errors.As(err, &cond) {
		return err
	}
	exists, existsErr := r.inventoryExists(ctx, inv)
	if exists || existsErr != nil {
		return errors.Join(err, existsErr)
	}
	return nil
}

// keptError is an uninstall's prune that kept members for reasons that may
// pass (objects kix does not own beside them, a list refused): the delete
// is retried. Each is a *deploy.ObjectError, so outside finds them.
type keptError struct{ err error }

func (e *keptError) Error() string { return "kept: " + e.err.Error() }
func (e *keptError) Unwrap() error { return e.err }

// keptAtUninstall judges the members an uninstall's prune kept: those that
// ask to be kept (kix.dev/prune: disabled) stay, with a warning event
// naming them, and their inventory with them; any other is a keptError.
func (r *InstallationReconciler) keptAtUninstall(inst *v1alpha1.Installation, cs *deploy.ChangeSet) error {
	var asked []string
	var blocking []error
	for _, c := range cs.Changes {
		switch {
		case c.Action != deploy.Kept:
		case c.Message == deploy.KeptAsAsked:
			asked = append(asked, c.Object.String())
		default:
			blocking = append(blocking, &deploy.ObjectError{ID: c.Object, Err: errors.New(c.Message)})
		}
	}
	if len(blocking) > 0 {
		return &keptError{errors.Join(blocking...)}
	}
	if len(asked) > 0 {
		r.event(inst, corev1.EventTypeWarning, "Kept", "kept, as they ask (%s: disabled), with their inventory: %s", deploy.PruneAnnotation, truncate(strings.Join(asked, ", "), 900))
	}
	return nil
}

// outside lists what of an Installation a failed delete may leave outside
// its namespace, which the namespace's deletion does not take: the failing
// objects elsewhere (each failure about an object is a
// *deploy.ObjectError), and, when a failure names no object (the
// inventory or a list was refused), the other namespaces and cluster-wide
// kinds the inventory records, read with the controller's own rights.
func (r *InstallationReconciler) outside(ctx context.Context, inst *v1alpha1.Installation, inv deploy.Inventory, err error) ([]string, error) {
	ids, unnamed := failedObjects(err)
	var out []string
	for _, id := range ids {
		if id.Namespace != inst.Namespace && id != (deploy.ObjectID{Kind: "Namespace", Name: inst.Namespace}) {
			out = append(out, id.String())
		}
	}
	if !unnamed {
		return out, nil
	}
	cm := &metav1.PartialObjectMetadata{}
	cm.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	if err := r.reader().Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: inv.Name}, cm); err != nil {
		// Gone with the namespace: what it recorded cannot be found.
		return out, client.IgnoreNotFound(err)
	}
	for _, ns := range strings.Split(cm.Annotations[deploy.NamespacesAnnotation], ",") {
		if ns = strings.TrimSpace(ns); ns != "" && ns != inst.Namespace {
			out = append(out, "objects in namespace "+ns)
		}
	}
	for _, gk := range strings.Split(cm.Annotations[deploy.GroupKindsAnnotation], ",") {
		if gk = strings.TrimSpace(gk); gk == "" {
			continue
		}
		m, err := r.Client.RESTMapper().RESTMapping(schema.ParseGroupKind(gk))
		if meta.IsNoMatchError(err) {
			continue // nothing of a kind the cluster no longer has
		}
		if err != nil {
			return out, err
		}
		if m.Scope.Name() != meta.RESTScopeNameNamespace && gk != "Namespace" {
			out = append(out, gk+" objects")
		}
	}
	return out, nil
}

// failedObjects lists the objects an error of the deploy engine is about
// (its *deploy.ObjectErrors, which errors.Join gathers), and whether some
// part of it is about no object.
func failedObjects(err error) (ids []deploy.ObjectID, unnamed bool) {
	switch e := err.(type) {
	case *deploy.ObjectError:
		return []deploy.ObjectID{e.ID}, false
	case interface{ Unwrap() []error }:
		for _, part := range e.Unwrap() {
			more, u := failedObjects(part)
			ids, unnamed = append(ids, more...), unnamed || u
		}
		return ids, unnamed
	case interface{ Unwrap() error }:
		return failedObjects(e.Unwrap())
	}
	return nil, true
}

// inventoryExists reports, with the controller's own rights, whether an
// inventory's ConfigMap is there. The deploy engine writes it before the
// first object it applies, so without it nothing was applied.
func (r *InstallationReconciler) inventoryExists(ctx context.Context, inv deploy.Inventory) (bool, error) {
	cm := &metav1.PartialObjectMetadata{}
	cm.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	err := r.reader().Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: inv.Name}, cm)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// reader reads what the manager does not cache: APIReader, or Client.
func (r *InstallationReconciler) reader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// namespaceTerminating reports whether a namespace is being deleted (or
// gone).
func (r *InstallationReconciler) namespaceTerminating(ctx context.Context, name string) (bool, error) {
	var ns corev1.Namespace
	if err := r.reader().Get(ctx, client.ObjectKey{Name: name}, &ns); err != nil {
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	}
	return !ns.DeletionTimestamp.IsZero(), nil
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
