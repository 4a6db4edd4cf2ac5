package deploy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/pmezard/go-difflib/difflib"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// ObjectDiff is what would change for one object.
type ObjectDiff struct {
	Object ObjectID `json:"object"`
	Action Action   `json:"action"` // Created, Configured, Unchanged or Pruned
	// Diff is a unified diff of the object's YAML, live against what the
	// server would make of the desired object (managed fields, status and
	// server bookkeeping left out). Empty when unchanged.
	Diff string `json:"diff,omitempty"`
	// Message explains an object that could not be dry-run (its namespace
	// or CRD does not exist yet).
	Message string `json:"message,omitempty"`
}

// DiffOptions configure a diff: the same as an apply's, without waiting.
type DiffOptions struct {
	DefaultNamespace string
	EnforceNamespace bool
	Inventory        *Inventory
	// Prune includes the inventory's members that would be pruned; an
	// empty set is refused unless AllowEmpty, as Apply refuses it.
	Prune      bool
	AllowEmpty bool
	Force      bool
	Adopt      bool
}

// Diff shows what Apply would change, asking the server with a dry run for
// every object that is not up to date, and which members a prune would
// delete. It changes nothing.
func (m *Manager) Diff(ctx context.Context, objs []*unstructured.Unstructured, opts DiffOptions) ([]ObjectDiff, error) {
	p, err := m.makePlan(objs, planScope{opts.DefaultNamespace, opts.EnforceNamespace}, opts.Inventory, nil)
	if err != nil {
		return nil, err
	}
	if opts.Prune && len(p.items) == 0 && !opts.AllowEmpty {
		return nil, ErrEmptySet
	}
	var diffs []ObjectDiff
	for s := StageNamespaces; s <= StageWebhooks; s++ {
		items := p.stage(s)
		if len(items) == 0 {
			continue
		}
		d, err := m.diffStage(ctx, items, p.namespaceObjects(), opts)
		if err != nil {
			return nil, err
		}
		diffs = append(diffs, d...)
	}
	if opts.Prune && opts.Inventory != nil {
		pruned, err := m.pruneCandidates(ctx, *opts.Inventory, p)
		if err != nil {
			return nil, err
		}
		diffs = append(diffs, pruned...)
	}
	return diffs, nil
}

// diffStage diffs one stage's objects. Those whose namespace does not
// exist yet are shown as written if the set creates it (created), and are
// an error if not, as their apply would be.
func (m *Manager) diffStage(ctx context.Context, items []*item, created map[string]bool, opts DiffOptions) ([]ObjectDiff, error) {
	var ready []*item
	var out []ObjectDiff
	for _, it := range items {
		if it.mapping == nil {
			if err := m.resolve([]*item{it}); err != nil {
				// Its CRD is in the set but not in the cluster yet.
				d, err := newObjectDiff(it, nil, it.obj, "its CustomResourceDefinition is created by this apply; shown as written")
				if err != nil {
					return nil, err
				}
				out = append(out, d)
				continue
			}
		}
		ready = append(ready, it)
	}
	live, err := m.liveObjects(ctx, ready)
	if err != nil {
		return nil, err
	}
	if err := foreignMembers(ready, live, opts.Inventory, opts.Adopt); err != nil {
		return nil, err
	}
	var todo []*item
	for _, it := range ready {
		if l, ok := live[it.id]; ok && upToDate(l, it) {
			out = append(out, ObjectDiff{Object: it.id, Action: Unchanged})
			continue
		}
		todo = append(todo, it)
	}
	results, errs := m.applyItems(ctx, todo, opts.Force, true)
	full, err := m.fullObjects(ctx, todo, live)
	if err != nil {
		return nil, err
	}
	for i, it := range todo {
		desired, note := results[i], ""
		if errs[i] != nil {
			if !created[it.id.Namespace] || !apierrors.IsNotFound(errors.Unwrap(errs[i])) {
				return nil, errs[i]
			}
			// Its namespace does not exist yet: the server cannot say more.
			desired, note = it.obj, "its namespace is created by this apply; shown as written"
		}
		d, err := newObjectDiff(it, full[it.id], desired, note)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func newObjectDiff(it *item, live, desired *unstructured.Unstructured, note string) (ObjectDiff, error) {
	d := ObjectDiff{Object: it.id, Message: note}
	live, desired = maskSecret(live, desired)
	before, err := normalizedYAML(live)
	if err != nil {
		return d, err
	}
	after, err := normalizedYAML(desired)
	if err != nil {
		return d, err
	}
	switch {
	case live == nil:
		d.Action = Created
	case before == after:
		d.Action = Unchanged
		return d, nil
	default:
		d.Action = Configured
	}
	from, lines := "live/"+it.id.String(), difflib.SplitLines(before)
	if live == nil {
		from, lines = "/dev/null", nil
	}
	d.Diff, err = difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: lines, B: difflib.SplitLines(after),
		FromFile: from, ToFile: "desired/" + it.id.String(), Context: 3,
	})
	return d, err
}

const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// maskSecret hides a Secret's values, as kubectl diff does: each is "***",
// or "*** (before)" and "*** (after)" where it changes, so a diff in a CI
// log says which keys change without saying to what. Other objects are
// returned as they are.
func maskSecret(live, desired *unstructured.Unstructured) (*unstructured.Unstructured, *unstructured.Unstructured) {
	isSecret := func(o *unstructured.Unstructured) bool {
		return o != nil && o.GroupVersionKind().GroupKind() == schema.GroupKind{Kind: "Secret"}
	}
	if !isSecret(live) && !isSecret(desired) {
		return live, desired
	}
	values := func(o *unstructured.Unstructured, field string) map[string]any {
		if !isSecret(o) {
			return nil
		}
		m, _, _ := unstructured.NestedMap(o.Object, field)
		return m
	}
	live, desired = live.DeepCopy(), desired.DeepCopy()
	// kubectl apply's record of a Secret holds its values too.
	for _, o := range []*unstructured.Unstructured{live, desired} {
		if !isSecret(o) {
			continue
		}
		if ann := o.GetAnnotations(); ann[lastApplied] != "" {
			ann[lastApplied] = "***"
			o.SetAnnotations(ann)
		}
	}
	for _, field := range []string{"data", "stringData"} {
		before, after := values(live, field), values(desired, field)
		for k, v := range before {
			before[k] = "***"
			if w, ok := after[k]; ok && !reflect.DeepEqual(w, v) {
				before[k], after[k] = "*** (before)", "*** (after)"
			}
		}
		for k, w := range after {
			if w != "*** (after)" {
				after[k] = "***"
			}
		}
		if before != nil {
			_ = unstructured.SetNestedMap(live.Object, before, field)
		}
		if after != nil {
			_ = unstructured.SetNestedMap(desired.Object, after, field)
		}
	}
	return live, desired
}

// normalizedYAML is an object as a reviewer wants to compare it: without
// status, managed fields, server bookkeeping or kix's checksum.
func normalizedYAML(obj *unstructured.Unstructured) (string, error) {
	if obj == nil {
		return "", nil
	}
	o := obj.DeepCopy()
	delete(o.Object, "status")
	for f := range serverMetadata {
		if f != "name" && f != "namespace" {
			unstructured.RemoveNestedField(o.Object, "metadata", f)
		}
	}
	unstructured.RemoveNestedField(o.Object, "metadata", "annotations", ChecksumAnnotation)
	if ann, _, _ := unstructured.NestedMap(o.Object, "metadata", "annotations"); len(ann) == 0 {
		unstructured.RemoveNestedField(o.Object, "metadata", "annotations")
	}
	data, err := yaml.Marshal(o.Object)
	if err != nil {
		return "", fmt.Errorf("%s: %w", IDOf(obj), err)
	}
	return string(data), nil
}

// pruneCandidates lists the members a prune would delete, and those it
// would keep, with the reason.
func (m *Manager) pruneCandidates(ctx context.Context, inv Inventory, p *plan) ([]ObjectDiff, error) {
	old, err := m.readInventory(ctx, inv)
	if err != nil {
		return nil, err
	}
	doomed, err := m.doomed(ctx, inv, old, p)
	if err != nil {
		return nil, err
	}
	var judged ChangeSet
	_, gone, err := m.judge(ctx, inv, p, doomed, true, &judged)
	if err != nil {
		return nil, err
	}
	var out []ObjectDiff
	for _, c := range judged.Changes {
		out = append(out, ObjectDiff{Object: c.Object, Action: Kept, Message: c.Message})
	}
	for _, mb := range gone {
		d := ObjectDiff{Object: mb.id, Action: Pruned}
		if obj, err := m.client.Resource(mb.mapping.Resource).Namespace(mb.id.Namespace).Get(ctx, mb.id.Name, metav1.GetOptions{}); err == nil {
			obj, _ = maskSecret(obj, nil)
			before, _ := normalizedYAML(obj)
			d.Diff, _ = difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
				A: difflib.SplitLines(before), FromFile: "live/" + mb.id.String(), ToFile: "/dev/null", Context: 3,
			})
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b ObjectDiff) int { return compareIDs(a.Object, b.Object) })
	return out, nil
}

// fullObjects reads the whole live objects of the items that exist (live
// holds only their metadata).
func (m *Manager) fullObjects(ctx context.Context, items []*item, live map[ObjectID]metav1.Object) (map[ObjectID]*unstructured.Unstructured, error) {
	var existing []*item
	for _, it := range items {
		if _, ok := live[it.id]; ok {
			existing = append(existing, it)
		}
	}
	full := make(map[ObjectID]*unstructured.Unstructured, len(existing))
	objs := make([]*unstructured.Unstructured, len(existing))
	index := map[*item]int{}
	for i, it := range existing {
		index[it] = i
	}
	errs := forEach(ctx, m.workers, existing, func(ctx context.Context, it *item) error {
		o, err := m.resourceFor(it.obj, it.mapping).Get(ctx, it.id.Name, metav1.GetOptions{})
		if err != nil {
			return &ObjectError{ID: it.id, Err: err}
		}
		objs[index[it]] = o
		return nil
	})
	for i, it := range existing {
		full[it.id] = objs[i]
	}
	return full, errors.Join(errs...)
}
