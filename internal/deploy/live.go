package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"

	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// liveObjects returns the metadata (labels, annotations, managed fields,
// UID, resource version) of the items that exist, from one list per
// resource and namespace: every object of it, labelled or not, so it is
// exactly known which items are new.
func (m *Manager) liveObjects(ctx context.Context, items []*item) (map[ObjectID]metav1.Object, error) {
	type group struct {
		mapping   *meta.RESTMapping
		namespace string
		first     ObjectID // the first item of the group, to name in errors
		others    int
	}
	type key struct {
		resource  schema.GroupVersionResource
		namespace string
	}
	index := map[key]int{}
	var groups []*group
	wanted := map[ObjectID]bool{}
	for _, it := range items {
		wanted[it.id] = true
		k := key{it.mapping.Resource, it.id.Namespace}
		if i, seen := index[k]; seen {
			groups[i].others++
			continue
		}
		index[k] = len(groups)
		groups = append(groups, &group{mapping: it.mapping, namespace: it.id.Namespace, first: it.id})
	}
	live := map[ObjectID]metav1.Object{}
	var mu sync.Mutex
	errs := forEach(ctx, m.workers, groups, func(ctx context.Context, g *group) error {
		objs, err := m.listMetadata(ctx, g.mapping, g.namespace, "")
		if err != nil {
			if g.others > 0 {
				err = fmt.Errorf("%w (and %d more of the set's %s here)", err, g.others, g.mapping.Resource.Resource)
			}
			return &ObjectError{ID: g.first, Err: fmt.Errorf("reading it from the cluster: %w", err)}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, o := range objs {
			if id := idOfMeta(g.mapping, o); wanted[id] {
				live[id] = o
			}
		}
		return nil
	})
	return live, errors.Join(errs...)
}

// listMetadata lists the metadata of a resource's objects in a namespace
// ("" for cluster-scoped), page by page.
func (m *Manager) listMetadata(ctx context.Context, mp *meta.RESTMapping, namespace, selector string) ([]*metav1.PartialObjectMetadata, error) {
	var out []*metav1.PartialObjectMetadata
	opts := metav1.ListOptions{LabelSelector: selector, Limit: 500}
	for {
		l, err := m.meta.Resource(mp.Resource).Namespace(namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", mp.Resource.Resource, err)
		}
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
		if opts.Continue = l.GetContinue(); opts.Continue == "" {
			return out, nil
		}
	}
}

// idOfMeta is the ID of a listed object of a resource.
func idOfMeta(mp *meta.RESTMapping, o metav1.Object) ObjectID {
	return ObjectID{Group: mp.GroupVersionKind.Group, Kind: mp.GroupVersionKind.Kind, Namespace: o.GetNamespace(), Name: o.GetName()}
}

// upToDate reports whether a live object is as kix last applied it for
// this content: it carries the content's checksum, kix still owns every
// field the desired object sets (nobody removed one), and no other field
// manager has written such a field since kix applied (a kubectl edit or
// scale, say). Such objects need no request at all.
func upToDate(live metav1.Object, it *item) bool {
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
	if ours == nil || ours.Time == nil || ours.FieldsV1 == nil {
		return false
	}
	var owned map[string]any
	if json.Unmarshal(ours.FieldsV1.GetRawBytes(), &owned) != nil || !covers(owned, specOf(it.obj.Object)) {
		return false // a field kix set was removed since
	}
	for _, e := range entries {
		// Subresources count too (kubectl scale writes spec.replicas
		// through scale), except status, which kix does not set.
		if e.Manager == FieldManager || e.Subresource == "status" || e.FieldsV1 == nil {
			continue
		}
		if e.Time != nil && e.Time.Before(ours.Time) {
			continue // written before kix's apply, which set its fields after
		}
		var fields map[string]any
		if json.Unmarshal(e.FieldsV1.GetRawBytes(), &fields) != nil || touches(fields, it.obj.Object) {
			return false
		}
	}
	return true
}

// specOf is what kix's own managed fields must cover of a desired
// object: all of it but what the server does not record as a field (type,
// name, namespace and the server's bookkeeping) and status, which an apply
// to the object does not write.
func specOf(obj map[string]any) map[string]any {
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		switch k {
		case "apiVersion", "kind", "status":
		case "metadata":
			meta, _ := v.(map[string]any)
			rest := make(map[string]any, len(meta))
			for mk, mv := range meta {
				if !serverMetadata[mk] {
					rest[mk] = mv
				}
			}
			out[k] = rest
		default:
			out[k] = v
		}
	}
	return out
}

// serverMetadata are metadata fields the server keeps (and the object's
// name), never owned by an applier, which a manifest exported with kubectl
// get -o yaml still holds. A diff leaves the bookkeeping among them out.
var serverMetadata = map[string]bool{
	"name": true, "namespace": true, "uid": true, "resourceVersion": true, "generation": true,
	"creationTimestamp": true, "deletionTimestamp": true, "deletionGracePeriodSeconds": true,
	"managedFields": true, "selfLink": true,
}

// covers reports whether a managed-fields set (fieldsV1) still holds every
// field the desired value sets, so nobody removed one. It errs on the side
// of "yes" where fieldsV1 does not say: an atomic field is owned whole, and
// of a list only the number of elements is compared.
func covers(fields map[string]any, desired any) bool {
	if leaf(fields) {
		return true
	}
	switch d := desired.(type) {
	case map[string]any:
		for name, value := range d {
			if value == nil || empty(value) {
				continue // null unsets, and nothing in {} or [] is owned
			}
			sub, ok := fields["f:"+name]
			if !ok {
				return false
			}
			children, _ := sub.(map[string]any)
			if !covers(children, value) {
				return false
			}
		}
	case []any:
		elements := 0
		for k := range fields {
			if k != "." {
				elements++
			}
		}
		return elements >= len(d)
	}
	return true
}

func empty(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
	}
	return false
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
		if !set || value == nil {
			continue // null in an apply sets nothing (replicas: null beside an HPA)
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
