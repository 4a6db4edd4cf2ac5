package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

const twoConfigMaps = `
apiVersion: v1
kind: ConfigMap
metadata: {name: a}
data: {k: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b}
data: {k: "1"}
`

func TestApplyReportsCreatedConfiguredUnchanged(t *testing.T) {
	m, counter := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "set", Namespace: ns}
	cs := apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	wantActions(t, cs, "ConfigMap/"+ns+"/a created", "ConfigMap/"+ns+"/b created")

	// Re-applying the same set sends nothing but lists.
	before := counter.get("PATCH")
	cs = apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	wantActions(t, cs, "ConfigMap/"+ns+"/a unchanged", "ConfigMap/"+ns+"/b unchanged")
	if patches := counter.get("PATCH") - before; patches != 0 {
		t.Errorf("a no-op re-apply made %d PATCH requests, want none", patches)
	}

	changed := strings.Replace(twoConfigMaps, `{k: "1"}`, `{k: "2"}`, 1)
	cs = apply(t, m, objects(t, ns, changed), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	wantActions(t, cs, "ConfigMap/"+ns+"/a configured", "ConfigMap/"+ns+"/b unchanged")
}

// A CRD and a resource of it apply in one run: the CRD first, established,
// then the resource.
func TestApplyCRDAndCustomResource(t *testing.T) {
	m, requests := newManager(t)
	ns := kube.Get(t).Namespace(t)
	group := strings.ReplaceAll(ns, "-", "") + ".example.org"
	set := strings.ReplaceAll(`
apiVersion: example.org/v1
kind: Widget
metadata: {name: w}
spec: {size: 3}
---
apiVersion: example.org/v1
kind: Widget
metadata: {name: w2}
---
apiVersion: example.org/v1
kind: Widget
metadata: {name: w3}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.org}
spec:
  group: example.org
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
`, "example.org", group)
	t.Cleanup(func() {
		_ = dyn(t).Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).
			Delete(context.Background(), "widgets."+group, metav1.DeleteOptions{})
	})
	cs := apply(t, m, objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, Inventory: &Inventory{Name: "crds", Namespace: ns}})
	wantActions(t, cs, "CustomResourceDefinition/widgets."+group+" created", "Widget/"+ns+"/w created", "Widget/"+ns+"/w2 created", "Widget/"+ns+"/w3 created")
	// Discovery is read at the start, again once for the unknown kind (not
	// once per Widget), and once after the CRD is established.
	if n := requests.get("discovery"); n > 3 {
		t.Errorf("discovery read %d times, want at most 3", n)
	}
	w, err := dyn(t).Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "widgets"}).Namespace(ns).Get(context.Background(), "w", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if size, _, _ := unstructured.NestedInt64(w.Object, "spec", "size"); size != 3 {
		t.Errorf("widget size %d", size)
	}
}

// A stage with an object the API refuses changes nothing.
func TestRejectedObjectLeavesItsStageUnapplied(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	set := twoConfigMaps + `
---
apiVersion: v1
kind: Service
metadata: {name: bad}
spec:
  ports: [{port: 99999}]
`
	cs, err := m.Apply(context.Background(), objects(t, ns, set), ApplyOptions{DefaultNamespace: ns})
	if err == nil || !strings.Contains(err.Error(), "Service/"+ns+"/bad") {
		t.Fatalf("error %v does not name Service/%s/bad", err, ns)
	}
	if cs.Count(Failed) != 1 {
		t.Errorf("changes %v, want one failure", actions(cs))
	}
	for _, name := range []string{"a", "b"} {
		if exists(t, configMaps, ns, name) {
			t.Errorf("ConfigMap %s was applied although its stage had a refused object", name)
		}
	}
}

func TestUnknownKindAppliesNothing(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	set := twoConfigMaps + `
---
apiVersion: nothing.example.org/v1
kind: Gadget
metadata: {name: g}
`
	_, err := m.Apply(context.Background(), objects(t, ns, set), ApplyOptions{DefaultNamespace: ns})
	if err == nil || !strings.Contains(err.Error(), "Gadget/"+ns+"/g") && !strings.Contains(err.Error(), "Gadget/g") {
		t.Fatalf("error %v does not name the Gadget", err)
	}
	if !strings.Contains(err.Error(), "no kind Gadget") {
		t.Errorf("error %v does not say the kind is unknown", err)
	}
	if exists(t, configMaps, ns, "a") {
		t.Error("objects were applied although the set had an unknown kind")
	}
}

// An identity that may not read the set's objects gets an error naming
// one of them, not only the resource it could not list.
func TestUnreadableObjectsAreNamed(t *testing.T) {
	ns := kube.Get(t).Namespace(t)
	cfg := kube.Get(t).RESTConfig()
	cfg.Impersonate.UserName = "system:serviceaccount:" + ns + ":nobody"
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Apply(context.Background(), objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns})
	var oe *ObjectError
	if !errors.As(err, &oe) || oe.ID.Name != "a" || !strings.Contains(err.Error(), "forbidden") || !strings.Contains(err.Error(), "1 more of the set's configmaps") {
		t.Fatalf("applying as an account without rights: %v", err)
	}
}

func TestDuplicatesAndInventoryCollision(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	_, err := m.Apply(context.Background(), objects(t, ns, twoConfigMaps+"\n---\n"+strings.Split(twoConfigMaps, "---")[0]), ApplyOptions{DefaultNamespace: ns})
	if err == nil || !strings.Contains(err.Error(), "appears twice") {
		t.Errorf("duplicate: %v", err)
	}
	_, err = m.Apply(context.Background(), objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: &Inventory{Name: "a", Namespace: ns}})
	if err == nil || !strings.Contains(err.Error(), "own ConfigMap") {
		t.Errorf("collision with the inventory parent: %v", err)
	}
}

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

func TestDryRunChangesNothing(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "dry", Namespace: ns}
	cs := apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv, DryRun: true, Prune: true})
	wantActions(t, cs, "ConfigMap/"+ns+"/a created", "ConfigMap/"+ns+"/b created")
	if exists(t, configMaps, ns, "a") || exists(t, configMaps, ns, "dry") {
		t.Error("a server dry run created objects")
	}
}

// A server dry run reports what the API refuses, new objects and changes
// alike, and fails as the apply would; objects in a Namespace the set
// brings are not refused for it.
func TestDryRunReportsRefusals(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	service := "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec:\n  ports: [{port: PORT}]\n"
	apply(t, m, objects(t, ns, strings.Replace(service, "PORT", "80", 1)), ApplyOptions{DefaultNamespace: ns})

	for what, set := range map[string]string{
		"a new object":             twoConfigMaps + "\n---\n" + strings.ReplaceAll(strings.Replace(service, "PORT", "99999", 1), "svc", "bad"),
		"an existing one's change": strings.Replace(service, "PORT", "99999", 1),
	} {
		cs, err := m.Apply(context.Background(), objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, DryRun: true})
		if err == nil || cs.Count(Failed) != 1 {
			t.Errorf("dry run of %s the API refuses: error %v, changes %v", what, err, actions(cs))
		}
	}

	brought := "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + ns + "-new}\n---\n" +
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: " + ns + "-new}\n"
	cs := apply(t, m, objects(t, ns, brought), ApplyOptions{DefaultNamespace: ns, DryRun: true})
	wantActions(t, cs, "Namespace/"+ns+"-new created", "ConfigMap/"+ns+"-new/c created")
}

func TestWaitForReadiness(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	set := `
apiVersion: apps/v1
kind: Deployment
metadata: {name: idle}
spec:
  replicas: 0
  selector: {matchLabels: {app: idle}}
  template:
    metadata: {labels: {app: idle}}
    spec: {containers: [{name: c, image: nix.internal/none}]}
`
	var progress []string
	cs := apply(t, m, objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, Wait: true, Timeout: time.Minute,
		Progress: func(msg string) { progress = append(progress, msg) }})
	if c := cs.Changes[0]; c.Status != "Current" || !strings.HasPrefix(c.Message, "ready after") {
		t.Errorf("change %+v, want Current and ready", c)
	}
	if len(progress) == 0 {
		t.Error("no progress was reported")
	}
}

func TestWaitTimesOutNamingWhatIsNotReady(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	set := `
apiVersion: apps/v1
kind: Deployment
metadata: {name: never}
spec:
  replicas: 1
  selector: {matchLabels: {app: never}}
  template:
    metadata: {labels: {app: never}}
    spec: {containers: [{name: c, image: nix.internal/none}]}
`
	_, err := m.Apply(context.Background(), objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, Wait: true, Timeout: 3 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "timed out") || !strings.Contains(err.Error(), "Deployment/"+ns+"/never") {
		t.Errorf("error %v", err)
	}
}

// A stage that updates existing objects is validated whole first: a
// refused object leaves the others' updates unapplied.
func TestRejectedObjectLeavesUpdatesUnapplied(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns})
	changed := strings.ReplaceAll(twoConfigMaps, `{k: "1"}`, `{k: "2"}`) + `
---
apiVersion: v1
kind: Service
metadata: {name: bad}
spec:
  ports: [{port: 99999}]
`
	if _, err := m.Apply(context.Background(), objects(t, ns, changed), ApplyOptions{DefaultNamespace: ns}); err == nil {
		t.Fatal("apply succeeded")
	}
	for _, name := range []string{"a", "b"} {
		cm, err := dyn(t).Resource(configMaps).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v, _, _ := unstructured.NestedString(cm.Object, "data", "k"); v != "1" {
			t.Errorf("ConfigMap %s was updated to %q although its stage had a refused object", name, v)
		}
	}
}

// Objects are read again once an earlier stage has written: an object
// that appeared in a namespace the set just created (as the cluster adds
// its own, or someone else) counts as existing, so its stage is validated
// whole first and a refused object leaves it untouched.
func TestLaterStagesSeeObjectsMadeMeanwhile(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t) + "-new"
	t.Cleanup(func() {
		_ = dyn(t).Resource(namespaces).Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	set := `apiVersion: v1
kind: Namespace
metadata: {name: NS}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: meanwhile, namespace: NS}
data: {by: kix}
---
apiVersion: v1
kind: Service
metadata: {name: bad, namespace: NS}
spec:
  ports: [{port: 99999}]
`
	// Between the stages, once the namespace exists, someone else makes
	// the ConfigMap.
	progress := func(msg string) {
		if !strings.Contains(msg, "namespaced") {
			return
		}
		cm := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "meanwhile", "namespace": ns},
			"data":     map[string]any{"hand": "yes"},
		}}
		if _, err := dyn(t).Resource(configMaps).Namespace(ns).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
			t.Error(err)
		}
	}
	if _, err := m.Apply(context.Background(), objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, Progress: progress}); err == nil {
		t.Fatal("apply of a refused Service succeeded")
	}
	cm, err := dyn(t).Resource(configMaps).Namespace(ns).Get(context.Background(), "meanwhile", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if by, found, _ := unstructured.NestedString(cm.Object, "data", "by"); found {
		t.Errorf("the ConfigMap made meanwhile got by=%q from a stage that was refused", by)
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

// A server dry run tells changed objects from unchanged ones, though it
// does not move their resourceVersion.
func TestDryRunTellsWhatWouldChange(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "dry-change", Namespace: ns}
	apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	changed := strings.Replace(twoConfigMaps, `{k: "1"}`, `{k: "2"}`, 1)
	cs := apply(t, m, objects(t, ns, changed), ApplyOptions{DefaultNamespace: ns, Inventory: inv, DryRun: true, Force: true})
	wantActions(t, cs, "ConfigMap/"+ns+"/a configured", "ConfigMap/"+ns+"/b unchanged")
	a, err := dyn(t).Resource(configMaps).Namespace(ns).Get(context.Background(), "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if k, _, _ := unstructured.NestedString(a.Object, "data", "k"); k != "1" {
		t.Errorf("a dry run changed data.k to %q", k)
	}
}

// A server dry run of a set with a CRD and custom resources of it reports
// the resources as created, unchecked: the CRD is not there to check them
// against.
func TestDryRunOfACRDAndItsResources(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	group := ns + ".example.org"
	set := strings.ReplaceAll(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gizmos.GROUP}
spec:
  group: GROUP
  scope: Namespaced
  names: {plural: gizmos, singular: gizmo, kind: Gizmo}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: GROUP/v1
kind: Gizmo
metadata: {name: g}
`, "GROUP", group)
	cs := apply(t, m, objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, Inventory: &Inventory{Name: "gizmos", Namespace: ns}, DryRun: true})
	wantActions(t, cs, "CustomResourceDefinition/gizmos."+group+" created", "Gizmo/"+ns+"/g created")
	if msg := cs.Changes[1].Message; !strings.Contains(msg, "not checked") {
		t.Errorf("the custom resource's message %q does not say it was not checked", msg)
	}
	if exists(t, crdGVR, "", "gizmos."+group) {
		t.Error("a dry run created the CRD")
	}
}

// With -n (EnforceNamespace), an object naming another namespace is
// refused before anything is applied, as kubectl refuses it.
func TestEnforcedNamespaceRefusesOthers(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	set := twoConfigMaps + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: elsewhere, namespace: default}\n"
	_, err := m.Apply(context.Background(), objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, EnforceNamespace: true})
	if err == nil || !strings.Contains(err.Error(), "ConfigMap/default/elsewhere") || !strings.Contains(err.Error(), `--namespace is "`+ns+`"`) {
		t.Fatalf("apply with -n of an object in another namespace: %v", err)
	}
	if exists(t, configMaps, ns, "a") || exists(t, configMaps, "default", "elsewhere") {
		t.Error("a refused set was partly applied")
	}
	// Naming the namespace -n gives is fine.
	cs := apply(t, m, objects(t, ns, strings.Replace(set, "namespace: default", "namespace: "+ns, 1)), ApplyOptions{DefaultNamespace: ns, EnforceNamespace: true})
	wantActions(t, cs, "ConfigMap/"+ns+"/a created", "ConfigMap/"+ns+"/b created", "ConfigMap/"+ns+"/elsewhere created")
}

// An inventory whose namespace neither exists nor comes with the set is
// refused before anything is applied.
func TestInventoryInAMissingNamespace(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	brought := ownNamespace(t, ns+"-brought")
	set := "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + brought + "}\n"
	for _, dryRun := range []bool{true, false} {
		_, err := m.Apply(context.Background(), objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, Inventory: &Inventory{Name: "x", Namespace: ns + "-nowhere"}, DryRun: dryRun})
		if err == nil || !strings.Contains(err.Error(), `namespace "`+ns+`-nowhere" does not exist`) {
			t.Fatalf("dry run %v: apply with an inventory in a missing namespace: %v", dryRun, err)
		}
	}
	if exists(t, namespaces, "", brought) {
		t.Error("the set's Namespace was applied, outside any inventory that can prune it")
	}
}

// Discovery finds a kind whatever its case; the API does not, so a
// misspelt kind is refused before anything is applied.
func TestKindCaseIsChecked(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "cased", Namespace: ns}
	_, err := m.Apply(context.Background(), objects(t, ns, twoConfigMaps+"---\napiVersion: v1\nkind: configmap\nmetadata: {name: lower}\n"), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	if err == nil || !strings.Contains(err.Error(), `kind "configmap" is spelled "ConfigMap"`) {
		t.Fatalf("apply of a lower-case kind: %v", err)
	}
	if exists(t, configMaps, ns, "a") || exists(t, configMaps, ns, "cased") {
		t.Error("a set with a misspelt kind was applied in part")
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
