package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// liveObjects returns the live objects of items that exist. With an
// inventory, one labelled list per resource and namespace finds them;
// without, each is read on its own.
func (m *Manager) liveObjects(ctx context.Context, items []*item, inv *Inventory) (map[ObjectID]*unstructured.Unstructured, error) {
	live := map[ObjectID]*unstructured.Unstructured{}
	var mu sync.Mutex
	found := func(o *unstructured.Unstructured) {
		mu.Lock()
		live[IDOf(o)] = o
		mu.Unlock()
	}
	if inv == nil {
		errs := forEach(ctx, m.workers, items, func(ctx context.Context, it *item) error {
			o, err := m.resourceFor(it.obj, it.mapping).Get(ctx, it.id.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return &ObjectError{ID: it.id, Err: err}
			}
			found(o)
			return nil
		})
		return live, errors.Join(errs...)
	}
	type group struct {
		gvr       schema.GroupVersionResource
		namespace string
	}
	seen := map[group]bool{}
	var groups []group
	for _, it := range items {
		g := group{it.mapping.Resource, it.id.Namespace}
		if !seen[g] {
			seen[g] = true
			groups = append(groups, g)
		}
	}
	selector := labels.Set{PartOfLabel: inv.ID()}.String()
	errs := forEach(ctx, m.workers, groups, func(ctx context.Context, g group) error {
		objs, err := m.list(ctx, g.gvr, g.namespace, selector)
		for _, o := range objs {
			found(o)
		}
		return err
	})
	return live, errors.Join(errs...)
}

// list lists a resource in a namespace ("" for all or cluster-scoped) by
// label selector, page by page.
func (m *Manager) list(ctx context.Context, gvr schema.GroupVersionResource, namespace, selector string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	opts := metav1.ListOptions{LabelSelector: selector, Limit: 500}
	for {
		l, err := m.client.Resource(gvr).Namespace(namespace).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
		if opts.Continue = l.GetContinue(); opts.Continue == "" {
			return out, nil
		}
	}
}

// upToDate reports whether a live object is as kix last applied it for
// this content: it carries the content's checksum, and no other field
// manager has written a field the desired object sets since kix applied
// (a kubectl edit, say). Such objects need no request at all.
func upToDate(live *unstructured.Unstructured, it *item) bool {
	if live.GetAnnotations()[ChecksumAnnotation] != it.sum || live.GetDeletionTimestamp() != nil {
		return false
	}
	var ours *metav1.ManagedFieldsEntry
	entries := live.GetManagedFields()
	for i, e := range entries {
		if e.Manager == FieldManager && e.Operation == metav1.ManagedFieldsOperationApply && e.Subresource == "" {
			ours = &entries[i]
		}
	}
	if ours == nil || ours.Time == nil {
		return false
	}
	for _, e := range entries {
		if e.Manager == FieldManager || e.Subresource != "" || e.FieldsV1 == nil {
			continue
		}
		if e.Time != nil && e.Time.Before(ours.Time) {
			continue // written before kix's apply, which set its fields after
		}
		var fields map[string]any
		if json.Unmarshal(e.FieldsV1.Raw, &fields) != nil || touches(fields, it.obj.Object) {
			return false
		}
	}
	return true
}

// touches reports whether a managed-fields set (fieldsV1) includes a field
// the desired object sets. List elements are not matched one by one: a
// manager owning any element of a list the object sets counts as touching
// it, which errs on the side of applying again.
func touches(fields map[string]any, desired any) bool {
	for key, sub := range fields {
		if key == "." {
			continue
		}
		name, isField := strings.CutPrefix(key, "f:")
		if !isField {
			if list, ok := desired.([]any); ok && len(list) > 0 {
				return true
			}
			continue
		}
		m, ok := desired.(map[string]any)
		if !ok {
			continue
		}
		value, set := m[name]
		if !set {
			continue
		}
		children, _ := sub.(map[string]any)
		if leaf(children) || touches(children, value) {
			return true
		}
	}
	return false
}

func leaf(children map[string]any) bool {
	for k := range children {
		if k != "." {
			return false
		}
	}
	return true
}
