package deploy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/dynamic"
)

// ErrNoInventory is returned by Prune for an inventory that does not
// exist.
var ErrNoInventory = errors.New("no such inventory: nothing was ever applied with it")

// PruneSet returns the members that are not desired: what a prune
// deletes. It is a pure set difference, sorted.
func PruneSet(members []ObjectID, desired map[ObjectID]bool) []ObjectID {
	var out []ObjectID
	for _, id := range members {
		if !desired[id] {
			out = append(out, id)
		}
	}
	slices.SortFunc(out, compareIDs)
	return slices.Compact(out)
}

// member is a live member of an inventory.
type member struct {
	id         ObjectID
	obj        metav1.Object
	mapping    *meta.RESTMapping
	namespaced bool
}

// members lists every live object labelled as a member of inv, in the
// group-kinds and namespaces st names. Group-kinds the cluster no longer
// has, after a fresh discovery (a CRD deleted since, with its objects),
// are skipped. A group-kind of
// an API group that cannot be discovered now (an aggregated API that is
// down) is an error: its members exist, unseen, and a prune that went on
// without them would forget them.
func (m *Manager) members(ctx context.Context, inv Inventory, st *inventoryState) ([]*member, error) {
	type task struct {
		mapping   *meta.RESTMapping
		namespace string
	}
	var tasks []task
	var unknown []schema.GroupKind
	fresh := false
	for gk := range st.groupKinds {
		mp, err := m.mapper.RESTMapping(gk)
		if meta.IsNoMatchError(err) && !fresh {
			// Discovery may be older than the kind (a CRD installed since
			// this Manager last looked): look once more.
			m.freshDiscovery()
			fresh = true
			mp, err = m.mapper.RESTMapping(gk)
		}
		if meta.IsNoMatchError(err) {
			unknown = append(unknown, gk)
			continue
		}
		if err != nil {
			return nil, err
		}
		if mp.Scope.Name() != meta.RESTScopeNameNamespace {
			tasks = append(tasks, task{mapping: mp})
			continue
		}
		for ns := range st.namespaces {
			tasks = append(tasks, task{mapping: mp, namespace: ns})
		}
	}
	if err := m.undiscovered(inv, unknown); err != nil {
		return nil, err
	}
	selector := labels.Set{PartOfLabel: inv.ID()}.String()
	var mu sync.Mutex
	var out []*member
	errs := forEach(ctx, m.workers, tasks, func(ctx context.Context, t task) error {
		objs, err := m.listMetadata(ctx, t.mapping, t.namespace, selector)
		if err != nil {
			return fmt.Errorf("%s: %w", inv, err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, o := range objs {
			out = append(out, &member{id: idOfMeta(t.mapping, o), obj: o, mapping: t.mapping, namespaced: t.namespace != ""})
		}
		return nil
	})
	return out, errors.Join(errs...)
}

// undiscovered returns an error naming the group-kinds of unknown whose
// API group could not be discovered, if any.
func (m *Manager) undiscovered(inv Inventory, unknown []schema.GroupKind) error {
	if len(unknown) == 0 {
		return nil
	}
	_, _, err := m.disco.ServerGroupsAndResources()
	failed, err := discoveryFailures(err)
	if err != nil {
		return fmt.Errorf("%s: discovering the cluster's kinds: %w", inv, err)
	}
	var unseen []string
	why := ""
	for _, gk := range unknown {
		for gv, err := range failed {
			if gv.Group == gk.Group {
				unseen = append(unseen, gk.String())
				why = discoveryFailure(gv, err)
				break
			}
		}
	}
	if len(unseen) == 0 {
		return nil
	}
	slices.Sort(unseen)
	return fmt.Errorf("%s: cannot look for its members of %s (%s: an aggregated API that is down?); nothing was pruned, and the inventory still records them: prune again once the cluster serves them",
		inv, strings.Join(unseen, ", "), why)
}

// doomed lists the inventory's members that are not in the plan: what a
// prune deletes (or keeps, see keepReason). It looks in the group-kinds and
// namespaces of the old set and of the plan.
func (m *Manager) doomed(ctx context.Context, inv Inventory, old *inventoryState, p *plan) ([]*member, error) {
	scope := &inventoryState{
		groupKinds: old.groupKinds.Union(sets.KeySet(p.groupKinds())),
		namespaces: old.namespaces.Union(sets.KeySet(p.namespaces())),
	}
	all, err := m.members(ctx, inv, scope)
	if err != nil {
		return nil, err
	}
	byID := map[ObjectID]*member{}
	var ids []ObjectID
	for _, mb := range all {
		byID[mb.id] = mb
		ids = append(ids, mb.id)
	}
	var out []*member
	for _, id := range PruneSet(ids, p.ids()) {
		out = append(out, byID[id])
	}
	return out, nil
}

// prune deletes the inventory's members that are not in the plan, in
// reverse stage order, reports each, and returns those it kept (see
// judge). Every member is judged before any is deleted.
func (m *Manager) prune(ctx context.Context, inv Inventory, old *inventoryState, p *plan, opts ApplyOptions, cs *ChangeSet) ([]*member, error) {
	doomed, err := m.doomed(ctx, inv, old, p)
	if err != nil {
		return nil, err
	}
	kept, gone, err := m.judge(ctx, inv, p, doomed, opts.DryRun, cs)
	if err != nil {
		return kept, err
	}
	if len(gone) > 0 {
		opts.progress("pruning %s that left %s", plural(len(gone), "object"), inv)
	}
	// The Namespace of the parent goes last, after everything else has:
	// if a deletion fails, the parent still records what is left.
	var batches [][]*member
	var home []*member
	for s := StageWebhooks; s >= StageNamespaces; s-- {
		var batch []*member
		for _, mb := range gone {
			switch {
			case mb.id == inv.home():
				home = []*member{mb}
			case mb.stage() == s:
				batch = append(batch, mb)
			}
		}
		batches = append(batches, batch)
	}
	for _, batch := range append(batches, home) {
		errs := forEach(ctx, m.workers, batch, func(ctx context.Context, mb *member) error {
			c, err := m.pruneOne(ctx, mb, opts.DryRun)
			cs.add(c)
			return err
		})
		if err := errors.Join(errs...); err != nil {
			return kept, err
		}
	}
	return kept, nil
}

func (mb *member) stage() Stage { return stageOf(mb.id, mb.namespaced) }

// judge splits the members that left the set into those kept (reported as
// such, see keepReason) and those that go. Stages are judged in reverse
// order, so a Namespace or CRD knows which of the objects that need it
// stay. The Namespace holding the inventory's parent is judged last: it
// stays while the parent does, that is while anything does.
func (m *Manager) judge(ctx context.Context, inv Inventory, p *plan, doomed []*member, dryRun bool, cs *ChangeSet) (kept, gone []*member, err error) {
	staying := slices.Collect(maps.Keys(p.ids()))
	var home *member
	for s := StageWebhooks; s >= StageNamespaces; s-- {
		type verdict struct {
			mb     *member
			reason string
		}
		var batch []*verdict
		for _, mb := range doomed {
			switch {
			case mb.stage() != s:
			case mb.id == inv.home():
				home = mb
			default:
				batch = append(batch, &verdict{mb: mb})
			}
		}
		errs := forEach(ctx, m.workers, batch, func(ctx context.Context, v *verdict) error {
			var err error
			v.reason, err = m.keepReason(ctx, inv, v.mb, staying, false)
			return err
		})
		if err := errors.Join(errs...); err != nil {
			return kept, gone, err
		}
		for _, v := range batch {
			if v.reason == "" {
				gone = append(gone, v.mb)
				continue
			}
			kept = append(kept, v.mb)
			staying = append(staying, v.mb.id)
			cs.add(Change{Object: v.mb.id, Action: Kept, Message: v.reason, DryRun: dryRun, stage: s})
		}
	}
	if home == nil {
		return kept, gone, nil
	}
	reason := ""
	if len(p.items) > 0 || len(kept) > 0 {
		reason = fmt.Sprintf("holds the parent of %s (ConfigMap/%s/%s), which stays", inv, inv.Namespace, inv.Name)
	} else if reason, err = m.keepReason(ctx, inv, home, staying, true); err != nil {
		return kept, gone, err
	}
	if reason == "" {
		return kept, append(gone, home), nil
	}
	cs.add(Change{Object: home.id, Action: Kept, Message: reason, DryRun: dryRun, stage: StageNamespaces})
	return append(kept, home), gone, nil
}

// keepReason says why a member that left the set is kept rather than
// deleted, or "" if it goes: it is not labelled as the inventory's; it is
// marked to be kept; or it is a Namespace or CRD that objects which stay
// need (staying: the set, and the members kept so far), or whose deletion
// would take objects kix does not own. parentGoes says the inventory's
// parent is deleted too, so it does not hold its namespace.
func (m *Manager) keepReason(ctx context.Context, inv Inventory, mb *member, staying []ObjectID, parentGoes bool) (string, error) {
	if mb.obj.GetLabels()[PartOfLabel] != inv.ID() {
		// Never delete what is not ours; the list's selector makes this
		// unreachable, and this check makes it certain.
		return "not a member of " + inv.String(), nil
	}
	if mb.obj.GetAnnotations()[PruneAnnotation] == "disabled" {
		return KeptAsAsked, nil
	}
	switch mb.id.GroupKind() {
	case schema.GroupKind{Kind: "Namespace"}:
		for _, id := range staying {
			if id.Namespace == mb.id.Name {
				return "holds " + id.String() + ", which stays", nil
			}
		}
		reason, err := m.foreignObjectIn(ctx, mb.id.Name, inv, parentGoes)
		if err != nil {
			return "", &ObjectError{ID: mb.id, Err: err}
		}
		return reason, nil
	case crdGroupKind:
		crd, err := m.readCRD(ctx, mb.id.Name)
		if apierrors.IsNotFound(err) {
			return "", nil
		}
		if err != nil {
			return "", &ObjectError{ID: mb.id, Err: err}
		}
		for _, id := range staying {
			if id.GroupKind() == crd.groupKind {
				return "defines " + id.String() + ", which stays", nil
			}
		}
		found, err := m.foreignResource(ctx, crd.resource, crd.groupKind.Kind, "", inv, false, m.ownedByMember(inv))
		unlisted := ""
		if err != nil {
			unlisted = "listing " + crd.resource.GroupResource().String() + ": " + err.Error()
		}
		return foreignReason("defines", found, unlisted), nil
	}
	return "", nil
}

// pruneOne deletes one member that keepReason let go.
func (m *Manager) pruneOne(ctx context.Context, mb *member, dryRun bool) (Change, error) {
	c := Change{Object: mb.id, DryRun: dryRun, stage: mb.stage()}
	uid := mb.obj.GetUID()
	background := metav1.DeletePropagationBackground
	del := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &background}
	if dryRun {
		del.DryRun = []string{metav1.DryRunAll}
	}
	resource := m.client.Resource(mb.mapping.Resource).Namespace(mb.id.Namespace)
	err := resource.Delete(ctx, mb.id.Name, del)
	if apierrors.IsConflict(err) {
		// The UID precondition failed: the object judged is gone, and
		// another of its name is there now. That one is deleted only by a
		// prune that judged it.
		err = replacedMember(ctx, resource, mb)
		if err == nil {
			c.Action, c.Message = Pruned, "already gone"
			return c, nil
		}
	}
	switch {
	case apierrors.IsNotFound(err):
		c.Action, c.Message = Pruned, "already gone"
		return c, nil
	case err != nil:
		c.Action, c.Message = Failed, err.Error()
		return c, &ObjectError{ID: mb.id, Err: err}
	}
	c.Action = Pruned
	return c, nil
}

// replacedMember says why pruneOne leaves the object that took the place
// of mb since it was listed: it is labelled a member of the same
// inventory, or could not be read. It returns nil if the name is free
// again, or taken by an object that is not a member.
func replacedMember(ctx context.Context, resource dynamic.ResourceInterface, mb *member) error {
	now, err := resource.Get(ctx, mb.id.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("replaced since it was listed (its UID did not match), and reading the new object failed: %w", err)
	case now.GetLabels()[PartOfLabel] != mb.obj.GetLabels()[PartOfLabel]:
		return nil
	}
	return fmt.Errorf("replaced since it was listed (UID %s, now %s) by another member of the set: not deleted; prune again to judge it", mb.obj.GetUID(), now.GetUID())
}

// Prune deletes the members of an inventory that are not among objs,
// without applying anything: `kix prune`. With an empty set (and
// AllowEmpty) it removes every member and the inventory itself.
func (m *Manager) Prune(ctx context.Context, objs []*unstructured.Unstructured, opts ApplyOptions) (*ChangeSet, error) {
	if opts.Inventory == nil {
		return nil, errors.New("pruning needs an inventory")
	}
	p, err := m.makePlan(objs, planScope{opts.DefaultNamespace, opts.EnforceNamespace}, opts.Inventory, opts.Labels)
	if err != nil {
		return nil, err
	}
	if len(p.items) == 0 && !opts.AllowEmpty {
		return nil, ErrEmptySet
	}
	inv, err := m.readInventory(ctx, *opts.Inventory)
	if err != nil {
		return nil, err
	}
	if !inv.exists && opts.Recorded != nil {
		inv = opts.Recorded.state(*opts.Inventory)
	} else if !inv.exists {
		return nil, fmt.Errorf("%s: %w", opts.Inventory, ErrNoInventory)
	}
	cs := &ChangeSet{Inventory: opts.Inventory.Namespace + "/" + opts.Inventory.Name}
	kept, err := m.prune(ctx, *opts.Inventory, inv, p, opts, cs)
	if err != nil {
		return cs, err
	}
	if err := m.finishInventory(ctx, *opts.Inventory, inv, p, true, kept, opts.DryRun); err != nil {
		return cs, err
	}
	cs.Sort()
	return cs, nil
}

// finishInventory records the set on the parent after an apply or prune:
// exactly the set's group-kinds and namespaces, and those of the members a
// prune kept, if it was pruned; the union with the old ones if not
// (members left behind are members until a prune). A pruned empty set that
// kept nothing removes the parent.
func (m *Manager) finishInventory(ctx context.Context, inv Inventory, old *inventoryState, p *plan, pruned bool, kept []*member, dryRun bool) error {
	if pruned && len(p.items) == 0 && len(kept) == 0 {
		if dryRun || !old.exists {
			return nil
		}
		err := m.client.Resource(parentGVR).Namespace(inv.Namespace).Delete(ctx, inv.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &old.uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting %s: %w", inv, err)
		}
		return nil
	}
	final := &inventoryState{groupKinds: sets.KeySet(p.groupKinds()), namespaces: sets.KeySet(p.namespaces()), checksum: setChecksum(p.sums)}
	for _, mb := range kept {
		final.groupKinds.Insert(mb.id.GroupKind())
		if mb.id.Namespace != "" {
			final.namespaces.Insert(mb.id.Namespace)
		}
	}
	if !pruned {
		final.groupKinds = final.groupKinds.Union(old.groupKinds)
		final.namespaces = final.namespaces.Union(old.namespaces)
	}
	final.namespaces.Insert(inv.Namespace)
	if old.records(final) {
		return nil
	}
	return m.writeInventory(ctx, inv, final, dryRun)
}
