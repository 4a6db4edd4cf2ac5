package deploy

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

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
	set := schemalessCRD(t, group, "gizmos", "Gizmo") + "apiVersion: " + group + "/v1\nkind: Gizmo\nmetadata: {name: g}\n"
	cs := apply(t, m, objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, Inventory: &Inventory{Name: "gizmos", Namespace: ns}, DryRun: true})
	wantActions(t, cs, "CustomResourceDefinition/gizmos."+group+" created", "Gizmo/"+ns+"/g created")
	if msg := cs.Changes[1].Message; !strings.Contains(msg, "not checked") {
		t.Errorf("the custom resource's message %q does not say it was not checked", msg)
	}
	if exists(t, crdGVR, "", "gizmos."+group) {
		t.Error("a dry run created the CRD")
	}
}
