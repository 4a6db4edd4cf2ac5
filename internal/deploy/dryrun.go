package deploy

import (
	"context"
	"errors"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// dryRunStage asks the server what applying the items would make of them,
// and reports each: created, or configured or unchanged as the answer
// differs from the live object or not. (A dry run keeps the
// resourceVersion, which is how classify tells a real apply's changes.)
func (m *Manager) dryRunStage(ctx context.Context, items []*item, live map[ObjectID]metav1.Object, setNamespaces map[string]bool, force bool, cs *ChangeSet) error {
	out, errs := m.applyItems(ctx, items, force, true)
	errs = excuseNewNamespaces(items, errs, setNamespaces)
	if failed(errs) {
		return reportFailures(items, errs, cs)
	}
	full, err := m.fullObjects(ctx, items, live)
	if err != nil {
		return err
	}
	for i, it := range items {
		action := Created
		if before, ok := full[it.id]; ok {
			action = Unchanged
			if !sameContent(before, out[i]) {
				action = Configured
			}
		}
		cs.add(Change{Object: it.id, Action: action, DryRun: true, stage: it.stage})
	}
	return nil
}

// sameContent reports whether two versions of an object are the same but
// for their managed fields and resourceVersion.
func sameContent(a, b *unstructured.Unstructured) bool {
	if a == nil || b == nil {
		return a == b
	}
	strip := func(o *unstructured.Unstructured) map[string]any {
		o = o.DeepCopy()
		unstructured.RemoveNestedField(o.Object, "metadata", "managedFields")
		unstructured.RemoveNestedField(o.Object, "metadata", "resourceVersion")
		return o.Object
	}
	return reflect.DeepEqual(strip(a), strip(b))
}

// excuseNewNamespaces drops, from a dry run's errors, the NotFound of
// objects whose namespace the set itself creates: the server cannot say
// more of them until it exists.
func excuseNewNamespaces(items []*item, errs []error, created map[string]bool) []error {
	for i, err := range errs {
		if err != nil && created[items[i].id.Namespace] && apierrors.IsNotFound(errors.Unwrap(err)) {
			errs[i] = nil
		}
	}
	return errs
}
