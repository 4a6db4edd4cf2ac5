package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/deploy"
)

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
		ctrl.LoggerFrom(ctx).Error(err, "letting an Installation go without deleting its objects: its namespace is being deleted")
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
		cs, err = dm.Prune(ctx, nil, deploy.ApplyOptions{DefaultNamespace: inst.Namespace, Inventory: &inv, AllowEmpty: true, Recorded: recorded(inst.Status.Recorded)})
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
	// Gone, the inventory may have gone first, with the namespace: what
	// the status recorded of it was applied all the same.
	exists, existsErr := r.inventoryExists(ctx, inv)
	if exists || existsErr != nil || inst.Status.Recorded != nil {
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
// inventory or a list was refused), the members the controller still
// finds, with its own rights, in the other namespaces and cluster-wide
// kinds the inventory (or the status, see inventoryRecord) records.
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
	namespaces, groupKinds, err := r.inventoryRecord(ctx, inst, inv)
	if err != nil {
		return out, err
	}
	var elsewhere []string
	for _, ns := range namespaces {
		if ns = strings.TrimSpace(ns); ns != "" && ns != inst.Namespace {
			elsewhere = append(elsewhere, ns)
		}
	}
	for _, gk := range groupKinds {
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
		scopes := elsewhere
		if m.Scope.Name() != meta.RESTScopeNameNamespace {
			scopes = []string{""}
		}
		for _, ns := range scopes {
			out = append(out, r.membersLeft(ctx, inst, inv, m, ns)...)
		}
	}
	return out, nil
}

// membersLeft lists, with the controller's own rights, the members of inv
// of one kind still in namespace ns (or cluster-wide, for ""), but the
// Installation's own Namespace. A kind it may not list is counted as left,
// unseen.
func (r *InstallationReconciler) membersLeft(ctx context.Context, inst *v1alpha1.Installation, inv deploy.Inventory, m *meta.RESTMapping, ns string) []string {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(m.GroupVersionKind.GroupVersion().WithKind(m.GroupVersionKind.Kind + "List"))
	opts := []client.ListOption{client.MatchingLabels{deploy.PartOfLabel: inv.ID()}, client.Limit(20)}
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	gk := m.GroupVersionKind.GroupKind()
	if err := r.reader().List(ctx, list, opts...); err != nil {
		where := gk.String() + " objects"
		if ns != "" {
			where += " in namespace " + ns
		}
		return []string{where + " (not listed: " + err.Error() + ")"}
	}
	var left []string
	for _, o := range list.Items {
		id := deploy.ObjectID{Group: gk.Group, Kind: gk.Kind, Namespace: o.Namespace, Name: o.Name}
		if id != (deploy.ObjectID{Kind: "Namespace", Name: inst.Namespace}) {
			left = append(left, id.String())
		}
	}
	return left
}

// inventoryRecord reads, with the controller's own rights, the namespaces
// and group-kinds the inventory records, or, when it is gone with the
// namespace, what the Installation's status kept of them.
func (r *InstallationReconciler) inventoryRecord(ctx context.Context, inst *v1alpha1.Installation, inv deploy.Inventory) (namespaces, groupKinds []string, err error) {
	cm := &metav1.PartialObjectMetadata{}
	cm.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	err = r.reader().Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: inv.Name}, cm)
	switch {
	case err == nil:
		return strings.Split(cm.Annotations[deploy.NamespacesAnnotation], ","), strings.Split(cm.Annotations[deploy.GroupKindsAnnotation], ","), nil
	case apierrors.IsNotFound(err) && inst.Status.Recorded != nil:
		return inst.Status.Recorded.Namespaces, inst.Status.Recorded.GroupKinds, nil
	}
	return nil, nil, client.IgnoreNotFound(err)
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

// namespaceTerminating reports whether a namespace is being deleted (or
// gone).
func (r *InstallationReconciler) namespaceTerminating(ctx context.Context, name string) (bool, error) {
	var ns corev1.Namespace
	if err := r.reader().Get(ctx, client.ObjectKey{Name: name}, &ns); err != nil {
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	}
	return !ns.DeletionTimestamp.IsZero(), nil
}

// recordOf is what an inventory records, as an Installation's status keeps
// it.
func recordOf(r *deploy.Record) *v1alpha1.InventoryRecord {
	out := &v1alpha1.InventoryRecord{Namespaces: r.Namespaces}
	for _, gk := range r.GroupKinds {
		out.GroupKinds = append(out.GroupKinds, gk.String())
	}
	return out
}

// recorded is the record an Installation's status keeps, as Prune takes
// it; nil if it keeps none.
func recorded(r *v1alpha1.InventoryRecord) *deploy.Record {
	if r == nil {
		return nil
	}
	out := &deploy.Record{Namespaces: r.Namespaces}
	for _, gk := range r.GroupKinds {
		out.GroupKinds = append(out.GroupKinds, schema.ParseGroupKind(gk))
	}
	return out
}
