package deploy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
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
	ns := kube.Get(t).Namespace(t)
	group := strings.ReplaceAll(ns, "-", "") + ".example.org"
	m, requests := newWatchingManager(t, group)
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
	// Discovery is read at the start and again once for the unknown kind,
	// not once per Widget; after the CRD is established, until the group is
	// there, and not again once it is.
	if n := requests.get("discovery before CRDs"); n != 2 {
		t.Errorf("discovery read %d times before the CRD was applied, want 2", n)
	}
	if n := requests.get("discovery listing the group"); n != 1 {
		t.Errorf("discovery listed the new group %d times, want once", n)
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
	ns := ownNamespace(t, kube.Get(t).Namespace(t)+"-new")
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

// When the set brings the Namespace of its inventory's parent, the parent
// records the set's kinds before any CRD is applied: an apply that stops
// at the Namespaces leaves no CRD behind that no parent lists, and that a
// later prune would never find.
func TestApplyStoppedAtNamespacesLeavesNoCRD(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	home := ownNamespace(t, ns+"-home")
	group := strings.ReplaceAll(ns, "-", "") + ".example.org"
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	t.Cleanup(func() {
		_ = dyn(t).Resource(crds).Delete(context.Background(), "gadgets."+group, metav1.DeleteOptions{})
	})
	set := strings.ReplaceAll(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.GROUP}
spec:
  group: GROUP
  scope: Cluster
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
---
apiVersion: v1
kind: Namespace
metadata: {name: HOME}
---
apiVersion: v1
kind: Namespace
metadata: {name: HOME-refused, labels: {bad: "not a label value!"}}
`, "GROUP", group)
	set = strings.ReplaceAll(set, "HOME", home)
	_, err := m.Apply(context.Background(), objects(t, home, set), ApplyOptions{DefaultNamespace: home, Inventory: &Inventory{Name: "app", Namespace: home}})
	if err == nil || !strings.Contains(err.Error(), "Namespace/"+home+"-refused") {
		t.Fatalf("error %v does not name Namespace/%s-refused", err, home)
	}
	if exists(t, crds, "", "gadgets."+group) {
		t.Error("the CRD was applied before the parent's Namespace, and the apply stopped before any parent recorded it")
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

// A cluster that cannot be reached is asked a few times, not once per
// object, before the apply fails.
func TestUnreachableClusterIsAskedOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	counter := &requestCounter{counts: map[string]int{}}
	cfg := &rest.Config{Host: "http://" + addr}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return counter.wrap(rt) })
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for i := range 200 {
		docs = append(docs, fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c%d, namespace: x}\n", i))
	}
	_, err = m.Apply(context.Background(), objects(t, "x", strings.Join(docs, "---\n")), ApplyOptions{})
	if err == nil || !strings.Contains(err.Error(), "reading the kinds the cluster serves") {
		t.Fatalf("apply to an unreachable cluster: %v", err)
	}
	if n := counter.get(http.MethodGet); n > 4*runtime.GOMAXPROCS(0) {
		t.Errorf("%d requests to an unreachable cluster for 200 objects", n)
	}
}

// An apply interrupted as a stage starts (Ctrl-C) reports the interruption
// for the objects it did not get to, and leaves none of them behind.
func TestApplyInterruptedAtAStage(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	var set strings.Builder
	for i := range 100 {
		fmt.Fprintf(&set, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d}\n", i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	progress := func(msg string) {
		if strings.HasPrefix(msg, "applying") {
			cancel()
		}
	}
	_, err := m.Apply(ctx, objects(t, ns, set.String()), ApplyOptions{DefaultNamespace: ns, Progress: progress})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted apply: %v, want context.Canceled", err)
	}
	list, err := dyn(t).Resource(configMaps).Namespace(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range list.Items {
		if strings.HasPrefix(cm.GetName(), "cm-") {
			t.Errorf("%s is left behind by the interrupted stage", cm.GetName())
		}
	}
}

// A wait whose time is up before the first read says so, naming the
// objects, instead of judging objects it never read.
func TestWaitWithNoTimeLeft(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	_, err := m.Apply(context.Background(), objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Wait: true, Timeout: time.Nanosecond})
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("wait with a nanosecond: %v", err)
	}
}

// A custom resource of a version its CRD in the set does not serve is
// refused before anything is applied, by diff as by apply.
func TestCustomResourceOfAnUnservedVersion(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	extra := ownNamespace(t, ns+"-v2")
	group := strings.ReplaceAll(ns, "-", "") + ".example.org"
	set := schemalessCRD(t, group, "doohickeys", "Doohickey") +
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: " + extra + "}\n---\n" +
		"apiVersion: " + group + "/v2\nkind: Doohickey\nmetadata: {name: d}\n"
	_, err := m.Apply(context.Background(), objects(t, ns, set), ApplyOptions{DefaultNamespace: ns})
	if err == nil || !strings.Contains(err.Error(), "Doohickey") || !strings.Contains(err.Error(), "serves v1, not v2") {
		t.Fatalf("apply: %v", err)
	}
	if exists(t, crdGVR, "", "doohickeys."+group) || exists(t, namespaces, "", extra) {
		t.Error("the refused set was applied in part")
	}
	if _, err := m.Diff(context.Background(), objects(t, ns, set), DiffOptions{DefaultNamespace: ns}); err == nil || !strings.Contains(err.Error(), "serves v1, not v2") {
		t.Errorf("diff: %v", err)
	}
}
