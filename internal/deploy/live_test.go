package deploy

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// A hand edit is drift: kix sees it and applies again; the editor now owns
// the field, so it takes --force-conflicts to take it back.
func TestDriftIsDetectedAndConflictsNamed(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "drift", Namespace: ns}
	apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	patch := []byte(`{"data":{"k":"edited"}}`)
	if _, err := dyn(t).Resource(configMaps).Namespace(ns).Patch(context.Background(), "a", types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	cs, err := m.Apply(context.Background(), objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	if err == nil || !strings.Contains(err.Error(), "kubectl-edit") || !strings.Contains(err.Error(), "--force-conflicts") {
		t.Fatalf("apply over a hand edit: %v", err)
	}
	if cs.Count(Failed) != 1 {
		t.Errorf("changes %v", actions(cs))
	}
	cs = apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv, Force: true})
	wantActions(t, cs, "ConfigMap/"+ns+"/a configured", "ConfigMap/"+ns+"/b unchanged")
	a, _ := dyn(t).Resource(configMaps).Namespace(ns).Get(context.Background(), "a", metav1.GetOptions{})
	if v, _, _ := unstructured.NestedString(a.Object, "data", "k"); v != "1" {
		t.Errorf("data.k = %q after a forced apply, want 1", v)
	}
}

// Writes by other managers to fields kix does not set are not drift.
func TestOtherManagersFieldsAreNotDrift(t *testing.T) {
	m, counter := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "labels", Namespace: ns}
	apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	patch := []byte(`{"metadata":{"annotations":{"team":"shop"}}}`)
	if _, err := dyn(t).Resource(configMaps).Namespace(ns).Patch(context.Background(), "a", types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "someone"}); err != nil {
		t.Fatal(err)
	}
	before := counter.get("PATCH")
	cs := apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	wantActions(t, cs, "ConfigMap/"+ns+"/a unchanged", "ConfigMap/"+ns+"/b unchanged")
	if n := counter.get("PATCH") - before; n != 0 {
		t.Errorf("%d PATCH requests, want none", n)
	}
}

// A field removed by hand is drift: nobody owns it any more, so applying
// again puts it back without a conflict.
func TestRemovedFieldIsDrift(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "removed", Namespace: ns}
	set := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {team: shop}}\ndata: {k: \"1\", z: \"2\"}\n"
	apply(t, m, objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	patch := []byte(`[{"op":"remove","path":"/data/z"},{"op":"remove","path":"/metadata/labels/team"}]`)
	if _, err := dyn(t).Resource(configMaps).Namespace(ns).Patch(context.Background(), "a", types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-patch"}); err != nil {
		t.Fatal(err)
	}
	cs := apply(t, m, objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	wantActions(t, cs, "ConfigMap/"+ns+"/a configured")
	a, err := dyn(t).Resource(configMaps).Namespace(ns).Get(context.Background(), "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if z, _, _ := unstructured.NestedString(a.Object, "data", "z"); z != "2" || a.GetLabels()["team"] != "shop" {
		t.Errorf("data.z = %q, labels %v: the removed fields are not back", z, a.GetLabels())
	}
}

// kubectl scale writes spec.replicas through the scale subresource: that
// is drift too. A Deployment as a set writes it (defaulted list keys,
// atomic fields) is otherwise not sent again.
func TestScaleIsDrift(t *testing.T) {
	m, counter := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "scaled", Namespace: ns}
	set := `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nix.internal/00000000000000000000000000000000-web
        args: ["--port", "8080"]
        ports: [{containerPort: 8080}]
        env: [{name: GREETING, value: hi}]
        resources: {limits: {memory: 64Mi}}
`
	apply(t, m, objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	before := counter.get("PATCH")
	cs := apply(t, m, objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	wantActions(t, cs, "Deployment/"+ns+"/web unchanged")
	if n := counter.get("PATCH") - before; n != 0 {
		t.Errorf("re-applying an unchanged Deployment made %d PATCH requests, want none", n)
	}

	deployments := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	scale := []byte(`{"spec":{"replicas":3}}`)
	if _, err := dyn(t).Resource(deployments).Namespace(ns).Patch(context.Background(), "web", types.MergePatchType, scale, metav1.PatchOptions{FieldManager: "kubectl-scale"}, "scale"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Apply(context.Background(), objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, Inventory: inv}); err == nil || !strings.Contains(err.Error(), "kubectl-scale") {
		t.Fatalf("apply over kubectl scale: %v; want a conflict naming kubectl-scale", err)
	}
	cs = apply(t, m, objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, Inventory: inv, Force: true})
	wantActions(t, cs, "Deployment/"+ns+"/web configured")
	web, err := dyn(t).Resource(deployments).Namespace(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := unstructured.NestedInt64(web.Object, "spec", "replicas"); r != 2 {
		t.Errorf("replicas = %d after a forced apply, want 2", r)
	}
}

// A manifest exported from a cluster carries the server's bookkeeping
// (generation, uid, a creationTimestamp), which nobody owns: re-applying it
// unchanged sends nothing.
func TestExportedManifestIsUpToDate(t *testing.T) {
	m, counter := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "exported", Namespace: ns}
	set := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, generation: 1, creationTimestamp: \"2020-01-01T00:00:00Z\"}\ndata: {k: \"1\"}\n"
	apply(t, m, objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	before := counter.get("PATCH")
	cs := apply(t, m, objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	wantActions(t, cs, "ConfigMap/"+ns+"/a unchanged")
	if n := counter.get("PATCH") - before; n != 0 {
		t.Errorf("re-applying an exported manifest made %d PATCH requests, want none", n)
	}
}
