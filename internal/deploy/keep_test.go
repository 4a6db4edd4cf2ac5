package deploy

// What a prune keeps although it left the set: Namespaces and CRDs that
// objects which stay need, or whose deletion would take objects kix does
// not own, and everything while it cannot see all members.

import (
	"context"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestNamespaceHoldingForeignObjectsIsKept(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	owned := ownNamespace(t, ns+"-owned")
	inv := &Inventory{Name: "ns-guard", Namespace: ns}
	apply(t, m, objects(t, ns, namespaceWithConfigMap(owned)), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	createHandMade(t, owned, "not-kix")

	// kix diff says what the prune will do.
	diffs, err := m.Diff(context.Background(), nil, DiffOptions{DefaultNamespace: ns, Inventory: inv, Prune: true, AllowEmpty: true})
	if err != nil {
		t.Fatal(err)
	}
	var said []string
	for _, d := range diffs {
		said = append(said, d.Object.String()+" "+string(d.Action))
	}
	if want := []string{"ConfigMap/" + owned + "/mine pruned", "Namespace/" + owned + " kept"}; !slices.Equal(said, want) {
		t.Errorf("diff says %q, want %q", said, want)
	}

	cs, err := m.Prune(context.Background(), nil, ApplyOptions{DefaultNamespace: ns, Inventory: inv, AllowEmpty: true})
	if err != nil {
		t.Fatal(err)
	}
	wantActions(t, cs, "Namespace/"+owned+" kept", "ConfigMap/"+owned+"/mine pruned")
	if msg := cs.Changes[0].Message; !strings.Contains(msg, "ConfigMap/"+owned+"/not-kix") {
		t.Errorf("kept namespace message %q does not name the foreign object", msg)
	}
	if !exists(t, configMaps, owned, "not-kix") {
		t.Error("the hand-made object is gone")
	}
}

// A Namespace that left the set is kept while objects that stay are in
// it: members of the set, and members a prune keeps.
func TestPruneKeepsANamespaceWhatStaysNeeds(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	home := ownNamespace(t, ns+"-home")
	inv := &Inventory{Name: "homes", Namespace: ns}
	namespace := "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + home + "}\n---\n"
	config := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: " + home + "}\n---\n"
	precious := "apiVersion: v1\nkind: Secret\nmetadata: {name: precious, namespace: " + home + ", annotations: {kix.dev/prune: disabled}}\n"
	apply(t, m, objects(t, ns, namespace+config+precious), ApplyOptions{DefaultNamespace: ns, Inventory: inv})

	// The set drops the Namespace but not what is in it.
	cs := apply(t, m, objects(t, ns, config+precious), ApplyOptions{DefaultNamespace: ns, Inventory: inv, Prune: true})
	wantActions(t, cs, "Namespace/"+home+" kept", "ConfigMap/"+home+"/cfg unchanged", "Secret/"+home+"/precious unchanged")
	if msg := cs.Changes[0].Message; !strings.Contains(msg, "which stays") {
		t.Errorf("kept namespace message %q", msg)
	}
	if terminating(t, home) {
		t.Fatal("the namespace of objects in the set was deleted")
	}

	// Everything leaves: the Secret is kept, so its Namespace is too, and
	// the inventory still records both.
	cs, err := m.Prune(context.Background(), nil, ApplyOptions{DefaultNamespace: ns, Inventory: inv, AllowEmpty: true})
	if err != nil {
		t.Fatal(err)
	}
	wantActions(t, cs, "Namespace/"+home+" kept", "ConfigMap/"+home+"/cfg pruned", "Secret/"+home+"/precious kept")
	if terminating(t, home) || !exists(t, secrets, home, "precious") {
		t.Fatal("a kept object was deleted with its namespace")
	}
	parent, err := dyn(t).Resource(configMaps).Namespace(ns).Get(context.Background(), "homes", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the inventory of kept members: %v", err)
	}
	if gks := parent.GetAnnotations()[GroupKindsAnnotation]; gks != "Namespace,Secret" {
		t.Errorf("parent group-kinds %q, want the kept members' Namespace,Secret", gks)
	}
}

// A CRD that left the set is kept while custom resources of the set, or
// ones kix does not own, are of its kind.
func TestPruneKeepsACRDWhatStaysNeeds(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	group := ns + ".example.org"
	crd := schemalessCRD(t, group, "gadgets", "Gadget")
	gadget := "apiVersion: " + group + "/v1\nkind: Gadget\nmetadata: {name: g}\n"
	inv := &Inventory{Name: "gadgets", Namespace: ns}
	apply(t, m, objects(t, ns, crd+gadget), ApplyOptions{DefaultNamespace: ns, Inventory: inv})

	cs := apply(t, m, objects(t, ns, gadget), ApplyOptions{DefaultNamespace: ns, Inventory: inv, Prune: true})
	wantActions(t, cs, "CustomResourceDefinition/gadgets."+group+" kept", "Gadget/"+ns+"/g unchanged")
	if msg := cs.Changes[0].Message; !strings.Contains(msg, "Gadget/"+ns+"/g, which stays") {
		t.Errorf("kept CRD message %q", msg)
	}

	gadgets := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "gadgets"}
	byHand := &unstructured.Unstructured{Object: map[string]any{"apiVersion": group + "/v1", "kind": "Gadget", "metadata": map[string]any{"name": "by-hand"}}}
	if _, err := dyn(t).Resource(gadgets).Namespace(ns).Create(context.Background(), byHand, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cs, err := m.Prune(context.Background(), nil, ApplyOptions{DefaultNamespace: ns, Inventory: inv, AllowEmpty: true})
	if err != nil {
		t.Fatal(err)
	}
	wantActions(t, cs, "CustomResourceDefinition/gadgets."+group+" kept", "Gadget/"+ns+"/g pruned")
	if msg := cs.Changes[0].Message; !strings.Contains(msg, "Gadget/"+ns+"/by-hand") {
		t.Errorf("kept CRD message %q does not name the object kix does not own", msg)
	}
	if !exists(t, gadgets, ns, "by-hand") {
		t.Error("a custom resource kix does not own was deleted with its CRD")
	}
}

// brokenAPIService registers an aggregated API whose service does not
// exist, as a cluster has one whose server is down: its group-version
// cannot be discovered. It is removed after the test.
func brokenAPIService(t *testing.T, group string) {
	t.Helper()
	apiServices := schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}
	svc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": "v1." + group},
		"spec": map[string]any{
			"group": group, "version": "v1", "groupPriorityMinimum": int64(1000), "versionPriority": int64(15),
			"service":               map[string]any{"namespace": "default", "name": "nowhere", "port": int64(443)},
			"insecureSkipTLSVerify": true,
		},
	}}
	if _, err := dyn(t).Resource(apiServices).Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dyn(t).Resource(apiServices).Delete(context.Background(), "v1."+group, metav1.DeleteOptions{})
	})
}

// While an API group cannot be discovered, a prune neither forgets the
// inventory's members of its kinds nor deletes a Namespace that may hold
// objects of them.
func TestPruneWhileAnAPIGroupIsDown(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	group := ns + ".example.org"
	brokenAPIService(t, group)

	t.Run("members of its kinds", func(t *testing.T) {
		inv := &Inventory{Name: "widgets", Namespace: ns}
		apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
		// An earlier apply, while the API was up, recorded Widgets.
		parent, err := dyn(t).Resource(configMaps).Namespace(ns).Get(context.Background(), inv.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ann := parent.GetAnnotations()
		ann[GroupKindsAnnotation] = "ConfigMap,Widget." + group
		parent.SetAnnotations(ann)
		if _, err := dyn(t).Resource(configMaps).Namespace(ns).Update(context.Background(), parent, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}

		onlyA := objects(t, ns, strings.Split(twoConfigMaps, "---")[0])
		_, err = m.Apply(context.Background(), onlyA, ApplyOptions{DefaultNamespace: ns, Inventory: inv, Prune: true})
		if err == nil || !strings.Contains(err.Error(), "Widget."+group) || !strings.Contains(err.Error(), "discovering "+group+"/v1") {
			t.Fatalf("prune with an undiscoverable kind recorded: error %v, want one naming Widget.%s and why", err, group)
		}
		if !exists(t, configMaps, ns, "b") {
			t.Error("the prune went on without the members it could not see")
		}
		parent, err = dyn(t).Resource(configMaps).Namespace(ns).Get(context.Background(), inv.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if gks := parent.GetAnnotations()[GroupKindsAnnotation]; gks != "ConfigMap,Widget."+group {
			t.Errorf("parent group-kinds %q after the refused prune, want the Widgets still recorded", gks)
		}
	})

	t.Run("a namespace that may hold them", func(t *testing.T) {
		owned := ownNamespace(t, ns+"-maybe")
		inv := &Inventory{Name: "ns-maybe", Namespace: ns}
		apply(t, m, objects(t, ns, namespaceWithConfigMap(owned)), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
		cs, err := m.Prune(context.Background(), nil, ApplyOptions{DefaultNamespace: ns, Inventory: inv, AllowEmpty: true})
		if err != nil {
			t.Fatal(err)
		}
		wantActions(t, cs, "Namespace/"+owned+" kept", "ConfigMap/"+owned+"/mine pruned")
		if msg := cs.Changes[0].Message; !strings.Contains(msg, "discovering "+group+"/v1") {
			t.Errorf("kept namespace message %q does not say which API group could not be discovered", msg)
		}
		if !exists(t, namespaces, "", owned) {
			t.Error("the namespace is gone")
		}
	})
}

// Deleting a CRD deletes its custom resources whatever owns them: one owned
// by an object kix does not own keeps the CRD, one owned by a member of the
// set goes with it.
func TestPruneKeepsACRDWhoseResourcesOthersOwn(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	group := ns + ".example.org"
	crd := schemalessCRD(t, group, "gizmos", "Gizmo")
	inv := &Inventory{Name: "gizmos", Namespace: ns}
	apply(t, m, objects(t, ns, crd+"apiVersion: "+group+"/v1\nkind: Gizmo\nmetadata: {name: mine}\n"), ApplyOptions{DefaultNamespace: ns, Inventory: inv})

	gizmos := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "gizmos"}
	ownedBy := func(name string, owner *unstructured.Unstructured) {
		t.Helper()
		o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": group + "/v1", "kind": "Gizmo", "metadata": map[string]any{"name": name}}}
		o.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: owner.GetAPIVersion(), Kind: owner.GetKind(), Name: owner.GetName(), UID: owner.GetUID()}})
		if _, err := dyn(t).Resource(gizmos).Namespace(ns).Create(context.Background(), o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mine, err := dyn(t).Resource(gizmos).Namespace(ns).Get(context.Background(), "mine", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ownedBy("child", mine) // as an operator makes one for a member

	cs, err := m.Prune(context.Background(), nil, ApplyOptions{DefaultNamespace: ns, Inventory: inv, AllowEmpty: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	wantActions(t, cs, "CustomResourceDefinition/gizmos."+group+" pruned", "Gizmo/"+ns+"/mine pruned")

	createHandMade(t, ns, "someone")
	someone, err := dyn(t).Resource(configMaps).Namespace(ns).Get(context.Background(), "someone", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ownedBy("theirs", someone)
	cs, err = m.Prune(context.Background(), nil, ApplyOptions{DefaultNamespace: ns, Inventory: inv, AllowEmpty: true})
	if err != nil {
		t.Fatal(err)
	}
	wantActions(t, cs, "CustomResourceDefinition/gizmos."+group+" kept", "Gizmo/"+ns+"/mine pruned")
	if msg := cs.Changes[0].Message; !strings.Contains(msg, "Gizmo/"+ns+"/theirs") {
		t.Errorf("kept CRD message %q does not name the custom resource someone else owns", msg)
	}
	if !exists(t, gizmos, ns, "theirs") {
		t.Error("a custom resource owned by an object kix does not own was deleted with its CRD")
	}
}

// namespaceWithConfigMap is a set of a Namespace and ConfigMap "mine" in it.
func namespaceWithConfigMap(namespace string) string {
	return "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + namespace + "}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: mine, namespace: " + namespace + "}\n"
}
