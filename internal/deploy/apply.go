package deploy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// ApplyOptions configure an apply.
type ApplyOptions struct {
	// DefaultNamespace is given to namespaced objects that name none.
	DefaultNamespace string
	// EnforceNamespace refuses namespaced objects that name another
	// namespace than DefaultNamespace (it was given with -n).
	EnforceNamespace bool
	// Inventory records the set's membership; Prune needs it.
	Inventory *Inventory
	// Prune deletes members of the inventory that are not in the set.
	Prune bool
	// AllowEmpty lets Prune run with an empty set (deleting every member).
	AllowEmpty bool
	// Recorded, for Prune, is what the inventory's parent recorded, as the
	// caller kept it (see Manager.Recorded): when the parent is gone, taken
	// with its namespace, Prune finds the members through it instead of
	// failing with ErrNoInventory.
	Recorded *Record
	// Force takes over fields other field managers own.
	Force bool
	// Adopt takes objects another inventory holds into this one; without
	// it such objects are refused (two sets would fight over them).
	Adopt bool
	// DryRun asks the server what would happen and changes nothing.
	DryRun bool
	// Wait waits until every object is ready (kstatus), up to Timeout.
	Wait    bool
	Timeout time.Duration
	// Progress is told what the apply is doing.
	Progress func(msg string)
	// Labels are added to every object (a controller marks what it owns).
	Labels map[string]string
}

func (o *ApplyOptions) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, args...))
	}
}

// ErrEmptySet is returned when a prune would run with an empty set and
// AllowEmpty is not set.
var ErrEmptySet = errors.New("the set is empty: pruning would delete every member of the inventory; pass --allow-empty to do that")

// Apply applies objects with server-side apply, stage by stage (see
// Stage), and returns what happened to each. Objects that are up to date
// are not sent (see upToDate). Before a stage is applied, all its changed
// objects are validated with a server-side dry run, so a stage that fails
// changes nothing. With an inventory, the parent first records the union
// of the old and new group-kinds and namespaces, so an apply that dies half
// way is completed, and pruned correctly, by the next one.
func (m *Manager) Apply(ctx context.Context, objs []*unstructured.Unstructured, opts ApplyOptions) (*ChangeSet, error) {
	p, err := m.makePlan(objs, planScope{opts.DefaultNamespace, opts.EnforceNamespace}, opts.Inventory, opts.Labels)
	if err != nil {
		return nil, err
	}
	cs := &ChangeSet{}
	var inv *inventoryState
	if opts.Inventory != nil {
		cs.Inventory = opts.Inventory.Namespace + "/" + opts.Inventory.Name
		if inv, err = m.readInventory(ctx, *opts.Inventory); err != nil {
			return nil, err
		}
	}
	if opts.Prune {
		if opts.Inventory == nil {
			return nil, errors.New("pruning needs an inventory")
		}
		if len(p.items) == 0 && !opts.AllowEmpty {
			return nil, ErrEmptySet
		}
	}
	intent := &intentWriter{m: m, inv: opts.Inventory, old: inv, plan: p, dryRun: opts.DryRun}
	applied, err := m.applyStages(ctx, p, opts, intent, cs)
	if err != nil {
		return cs, err
	}
	if opts.Wait && !opts.DryRun {
		if err := m.wait(ctx, applied, opts, cs); err != nil {
			return cs, err
		}
	}
	var kept []*member
	if opts.Prune {
		if kept, err = m.prune(ctx, *opts.Inventory, inv, p, opts, cs); err != nil {
			return cs, err
		}
	}
	if opts.Inventory != nil {
		if err := m.finishInventory(ctx, *opts.Inventory, inv, p, opts.Prune, kept, opts.DryRun); err != nil {
			return cs, err
		}
	}
	cs.Sort()
	return cs, nil
}

// applyStages applies the plan stage by stage and returns its objects.
// The live objects are read, and members of another inventory refused,
// before anything is written: for every kind already known at once, for
// the set's own custom resources at their stage. Once a stage has written,
// each later stage reads its objects again just before it is applied: a
// namespace the set created may have been filled by the cluster meanwhile,
// and an object may have been edited.
func (m *Manager) applyStages(ctx context.Context, p *plan, opts ApplyOptions, intent *intentWriter, cs *ChangeSet) (map[ObjectID]*applied, error) {
	results := map[ObjectID]*applied{}
	live, err := m.liveObjects(ctx, mapped(p.items))
	if err != nil {
		return results, err
	}
	if err := foreignMembers(p.items, live, opts.Inventory, opts.Adopt); err != nil {
		return results, err
	}
	wrote := false
	for s := StageNamespaces; s <= StageWebhooks; s++ {
		items := p.stage(s)
		if len(items) == 0 {
			continue
		}
		if err := intent.before(ctx, s); err != nil {
			return results, err
		}
		reread := unmapped(items)
		if len(reread) > 0 && opts.DryRun {
			// A dry run did not create the set's CRDs: what cannot be
			// mapped yet is reported as created, unchecked.
			for _, it := range reread {
				if m.resolve([]*item{it}) != nil {
					cs.add(Change{Object: it.id, Action: Created, DryRun: true, Message: "its CustomResourceDefinition is created by this apply; not checked", stage: s})
				}
			}
			items = mapped(items)
			reread = slices.DeleteFunc(reread, func(it *item) bool { return it.mapping == nil })
		} else if len(reread) > 0 {
			if err := m.resolve(reread); err != nil {
				return results, err
			}
		}
		opts.progress("applying %s", s.count(len(items)))
		if wrote {
			reread = items
		}
		if len(reread) > 0 {
			if err := m.readAgain(ctx, reread, live, opts); err != nil {
				return results, err
			}
		}
		before := cs.written()
		stageResults, err := m.applyStage(ctx, items, live, p.namespaceObjects(), opts, cs)
		for id, r := range stageResults {
			results[id] = r
		}
		if err != nil {
			return results, fmt.Errorf("applying %s: %w", s, err)
		}
		wrote = wrote || cs.written() > before
		if s == StageCRDs && !opts.DryRun {
			if err := m.waitEstablished(ctx, items, opts); err != nil {
				return results, err
			}
		}
	}
	// A set of Namespaces only, one of which holds the parent, has had no
	// later stage to record it before.
	return results, intent.before(ctx, StageWebhooks)
}

// applied is an object of the set after its apply; obj is read whole only
// when it is waited for.
type applied struct {
	item *item
	obj  *unstructured.Unstructured
}

// mapped are the items whose kind the cluster knows; unmapped the others,
// of the set's own CRDs.
func mapped(items []*item) []*item {
	return slices.DeleteFunc(slices.Clone(items), func(it *item) bool { return it.mapping == nil })
}

func unmapped(items []*item) []*item {
	return slices.DeleteFunc(slices.Clone(items), func(it *item) bool { return it.mapping != nil })
}

// readAgain reads the items' live objects into live, replacing what was
// read of them before, and refuses those of another inventory.
func (m *Manager) readAgain(ctx context.Context, items []*item, live map[ObjectID]metav1.Object, opts ApplyOptions) error {
	now, err := m.liveObjects(ctx, items)
	if err != nil {
		return err
	}
	for _, it := range items {
		delete(live, it.id)
	}
	maps.Copy(live, now)
	return foreignMembers(items, now, opts.Inventory, opts.Adopt)
}

// applyStage applies a stage's items, given the live objects of the set;
// setNamespaces are the set's own Namespaces (which a dry run does not
// create).
func (m *Manager) applyStage(ctx context.Context, items []*item, live map[ObjectID]metav1.Object, setNamespaces map[string]bool, opts ApplyOptions, cs *ChangeSet) (map[ObjectID]*applied, error) {
	results := map[ObjectID]*applied{}
	var todo []*item
	allNew := true
	for _, it := range items {
		l, exists := live[it.id]
		if exists && upToDate(l, it) {
			results[it.id] = &applied{item: it}
			cs.add(Change{Object: it.id, Action: Unchanged, DryRun: opts.DryRun, stage: it.stage})
			continue
		}
		allNew = allNew && !exists
		todo = append(todo, it)
	}
	if len(todo) == 0 {
		return results, nil
	}
	for _, it := range todo {
		results[it.id] = &applied{item: it}
	}
	if opts.DryRun {
		return results, m.dryRunStage(ctx, todo, live, setNamespaces, opts.Force, cs)
	}
	// A stage that changes existing objects is validated whole before any
	// of it is applied. A stage of new objects is applied at once, and
	// what it created is removed again if any object is refused.
	if !allNew {
		if _, errs := m.applyItemsMeta(ctx, todo, opts.Force, true); failed(errs) {
			return results, reportFailures(todo, errs, cs)
		}
	}
	out, errs := m.applyItemsMeta(ctx, todo, opts.Force, false)
	if failed(errs) {
		return results, m.rollBack(ctx, todo, out, errs, cs)
	}
	for i, it := range todo {
		cs.add(Change{Object: it.id, Action: classify(live[it.id], out[i]), stage: it.stage})
	}
	return results, nil
}

// foreignMembers refuses, all at once, items that live as members of
// another inventory, unless the apply adopts them.
// Without an inventory, every member of one is refused: applying it
// would take away its membership label.
func foreignMembers(items []*item, live map[ObjectID]metav1.Object, inv *Inventory, adopt bool) error {
	if adopt {
		return nil
	}
	var errs []error
	for _, it := range items {
		l, ok := live[it.id]
		if !ok {
			continue
		}
		owner := l.GetLabels()[PartOfLabel]
		if owner == "" || (inv != nil && owner == inv.ID()) {
			continue
		}
		name := l.GetAnnotations()[InventoryAnnotation]
		if name == "" {
			name = PartOfLabel + "=" + owner
		}
		if inv == nil {
			errs = append(errs, &ObjectError{ID: it.id, Err: fmt.Errorf("belongs to inventory %s; apply it with that --inventory, or take it out of the set with --adopt", name)})
			continue
		}
		errs = append(errs, &ObjectError{ID: it.id, Err: fmt.Errorf("belongs to inventory %s; remove it from that set first, or adopt it (--adopt)", name)})
	}
	return errors.Join(errs...)
}

// rollBackTimeout bounds removing a failed stage's new objects.
const rollBackTimeout = time.Minute

// rollBack deletes the objects a stage of new objects created when others
// of it were refused, so the stage leaves nothing behind.
func (m *Manager) rollBack(ctx context.Context, todo []*item, out []*metav1.PartialObjectMetadata, errs []error, cs *ChangeSet) error {
	var created []*item
	for i, it := range todo {
		if errs[i] == nil && out[i] != nil && createdByThisApply(out[i]) {
			created = append(created, it)
		}
	}
	uids := map[*item]types.UID{}
	for i, it := range todo {
		if out[i] != nil {
			uids[it] = out[i].GetUID()
		}
	}
	// Removed even when ctx ended (an interrupted apply): not under it,
	// but for as long as a stage's requests may take.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollBackTimeout)
	defer cancel()
	rollbackErrs := forEach(ctx, m.workers, created, func(ctx context.Context, it *item) error {
		uid := uids[it]
		err := m.resourceFor(it.obj, it.mapping).Delete(ctx, it.id.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			return &ObjectError{ID: it.id, Err: fmt.Errorf("removing it again after its stage failed: %w", err)}
		}
		return nil
	})
	err := reportFailures(todo, errs, cs)
	if len(created) > 0 {
		err = fmt.Errorf("%w\n(the %d new objects of the stage that were created have been removed again)", err, len(created))
	}
	return errors.Join(append([]error{err}, rollbackErrs...)...)
}

// applyItems server-side applies items in parallel and returns the
// objects whole, as the server answered (a diff shows them).
func (m *Manager) applyItems(ctx context.Context, items []*item, force, dryRun bool) ([]*unstructured.Unstructured, []error) {
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: force, DryRun: dryRunAll(dryRun)}
	return eachApplied(ctx, m.workers, items, force, func(ctx context.Context, it *item) (*unstructured.Unstructured, error) {
		return m.resourceFor(it.obj, it.mapping).Apply(ctx, it.id.Name, it.obj, opts)
	})
}

// applyItemsMeta server-side applies items in parallel and returns only
// their metadata, which is all an apply reads: the server encodes, and kix
// decodes, a fraction of each object (as protobuf where the kind has it).
func (m *Manager) applyItemsMeta(ctx context.Context, items []*item, force, dryRun bool) ([]*metav1.PartialObjectMetadata, []error) {
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: &force, DryRun: dryRunAll(dryRun), FieldValidation: applyFieldValidation}
	return eachApplied(ctx, m.workers, items, force, func(ctx context.Context, it *item) (*metav1.PartialObjectMetadata, error) {
		return m.metaFor(it.obj, it.mapping).Patch(ctx, it.id.Name, types.ApplyPatchType, it.patch, opts)
	})
}

// applyFieldValidation is what applies ask the server to check beyond what
// server-side apply always does. Apply refuses a field the schema does not
// declare whatever this says; Strict and Warn (the default) only add a
// second, strict parse of the patch for duplicate keys, which a patch kix
// marshals from a map cannot have. That parse costs the API server about a
// twentieth of an apply, so kix does not ask for it.
const applyFieldValidation = metav1.FieldValidationIgnore

// eachApplied runs apply for each item with at most workers at once and
// returns the answers and the errors, by item.
func eachApplied[T any](ctx context.Context, workers int, items []*item, force bool, apply func(context.Context, *item) (T, error)) ([]T, []error) {
	out := make([]T, len(items))
	index := make(map[*item]int, len(items))
	for i, it := range items {
		index[it] = i
	}
	errs := forEach(ctx, workers, items, func(ctx context.Context, it *item) error {
		o, err := apply(ctx, it)
		if err != nil {
			return &ObjectError{ID: it.id, Err: explainApplyError(err, force)}
		}
		out[index[it]] = o
		return nil
	})
	return out, errs
}

func dryRunAll(dryRun bool) []string {
	if dryRun {
		return []string{metav1.DryRunAll}
	}
	return nil
}

func explainApplyError(err error, force bool) error {
	if apierrors.IsConflict(err) && !force {
		return fmt.Errorf("%w (another field manager owns these fields; --force-conflicts takes them over)", err)
	}
	return err
}

func failed(errs []error) bool { return errors.Join(errs...) != nil }

func reportFailures(items []*item, errs []error, cs *ChangeSet) error {
	named := make([]error, len(errs))
	for i, err := range errs {
		if err == nil {
			continue
		}
		// An item not sent at all (ctx ended first) has ctx's bare error.
		oe, ok := err.(*ObjectError)
		if !ok {
			oe = &ObjectError{ID: items[i].id, Err: err}
		}
		named[i] = oe
		cs.add(Change{Object: items[i].id, Action: Failed, Message: oe.Err.Error(), stage: items[i].stage})
	}
	return errors.Join(named...)
}

// classify tells what an apply did: live is the object before (nil if kix
// did not find it), result what the server answered.
func classify(live, result metav1.Object) Action {
	if live == nil {
		if createdByThisApply(result) {
			return Created
		}
		return Configured // existed without kix's label: adopted
	}
	if live.GetResourceVersion() == result.GetResourceVersion() {
		return Unchanged
	}
	return Configured
}

// createdByThisApply reports whether kix's apply is the object's only
// write so far.
func createdByThisApply(o metav1.Object) bool {
	entries := o.GetManagedFields()
	for _, e := range entries {
		if e.Manager != FieldManager && e.Subresource == "" {
			return false
		}
	}
	created := o.GetCreationTimestamp()
	for _, e := range entries {
		if e.Manager == FieldManager && e.Time != nil && e.Time.Sub(created.Time) > time.Second {
			return false
		}
	}
	return true
}

// waitEstablished waits until the CRDs just applied are Established and
// discovery serves their kinds, so custom resources of them can be applied
// in later stages. The API server marks a CRD Established before its new
// group reaches discovery, so the kinds are asked for until they are there.
func (m *Manager) waitEstablished(ctx context.Context, crds []*item, opts ApplyOptions) error {
	opts.progress("waiting for %s to be established", plural(len(crds), "CustomResourceDefinition"))
	deadline := time.Now().Add(time.Minute)
	pause := func() error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
			return nil
		}
	}
	var kinds []schema.GroupVersionKind
	for _, it := range crds {
		for {
			crd, err := m.client.Resource(crdGVR).Get(ctx, it.id.Name, metav1.GetOptions{})
			if err != nil {
				return &ObjectError{ID: it.id, Err: err}
			}
			if established(crd) {
				kinds = append(kinds, definedKind(crd).WithVersion(servedVersion(crd)))
				break
			}
			if time.Now().After(deadline) {
				return &ObjectError{ID: it.id, Err: errors.New("not Established after a minute")}
			}
			if err := pause(); err != nil {
				return err
			}
		}
	}
	for {
		missing, err := m.resetMapper(kinds)
		if missing == nil || err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kind %s in %s is Established but not in the cluster's discovery after a minute", missing.Kind, missing.GroupVersion())
		}
		if err := pause(); err != nil {
			return err
		}
	}
}

func established(crd *unstructured.Unstructured) bool {
	conditions, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conditions {
		cm, _ := c.(map[string]any)
		if cm["type"] == "Established" && cm["status"] == "True" {
			return true
		}
	}
	return false
}
