package controller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// Status updates of an owned workload do not wake its Installation; what
// can be drift does.
func TestWorkloadDrift(t *testing.T) {
	old := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Name: "web", Generation: 3, ResourceVersion: "10",
		Labels: map[string]string{LabelInstallation: "web"}, Annotations: map[string]string{"a": "1"},
	}}
	for _, tc := range []struct {
		name   string
		change func(*metav1.PartialObjectMetadata)
		wakes  bool
	}{
		{"status only (a new resourceVersion)", func(*metav1.PartialObjectMetadata) {}, false},
		{"spec (a new generation)", func(o *metav1.PartialObjectMetadata) { o.Generation++ }, true},
		{"a label", func(o *metav1.PartialObjectMetadata) { o.Labels = map[string]string{} }, true},
		{"an annotation", func(o *metav1.PartialObjectMetadata) { o.Annotations = map[string]string{"a": "2"} }, true},
		{"deletion", func(o *metav1.PartialObjectMetadata) { now := metav1.Now(); o.DeletionTimestamp = &now }, true},
	} {
		updated := old.DeepCopy()
		updated.ResourceVersion = "11"
		tc.change(updated)
		if got := workloadDrift.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: updated}); got != tc.wakes {
			t.Errorf("%s: wakes the Installation = %v, want %v", tc.name, got, tc.wakes)
		}
	}
	if !workloadDrift.Delete(event.DeleteEvent{Object: old}) {
		t.Error("a deleted workload does not wake its Installation")
	}
}
