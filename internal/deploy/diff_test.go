package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestDiff(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "diff", Namespace: ns}
	apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv})

	next := strings.Replace(strings.Split(twoConfigMaps, "---")[0], `{k: "1"}`, `{k: "2"}`, 1) + `
---
apiVersion: v1
kind: Secret
metadata: {name: new}
stringData: {k: v}
`
	diffs, err := m.Diff(context.Background(), objects(t, ns, next), DiffOptions{DefaultNamespace: ns, Inventory: inv, Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ObjectDiff{}
	for _, d := range diffs {
		got[d.Object.String()+" "+string(d.Action)] = d
	}
	for _, want := range []string{"ConfigMap/" + ns + "/a configured", "Secret/" + ns + "/new created", "ConfigMap/" + ns + "/b pruned"} {
		if _, ok := got[want]; !ok {
			t.Errorf("diff lacks %q: %v", want, got)
		}
	}
	if d := got["ConfigMap/"+ns+"/a configured"].Diff; !strings.Contains(d, `-  k: "1"`) || !strings.Contains(d, `+  k: "2"`) || strings.Contains(d, "managedFields") {
		t.Errorf("diff of a:\n%s", d)
	}
	// A diff writes nothing (its PATCHes are dry runs).
	if !exists(t, configMaps, ns, "b") || exists(t, secrets, ns, "new") {
		t.Error("a diff changed the cluster")
	}
}

// A Secret's values never show in a diff: the keys do, and which of them
// change.
func TestDiffMasksSecrets(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "secrets", Namespace: ns}
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {user: admin, password: hunter2}\n"
	apply(t, m, objects(t, ns, secret), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	// As if kubectl apply had written it once: its record holds the values.
	record := []byte(`{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"stringData\":{\"password\":\"hunter2\"}}"}}}`)
	if _, err := dyn(t).Resource(secrets).Namespace(ns).Patch(context.Background(), "creds", types.MergePatchType, record, metav1.PatchOptions{FieldManager: "kubectl-client-side-apply"}); err != nil {
		t.Fatal(err)
	}
	next := strings.Replace(secret, "hunter2", "correcthorse", 1) + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: fresh}\nstringData: {token: s3cret}\n"
	diffs, err := m.Diff(context.Background(), objects(t, ns, next), DiffOptions{DefaultNamespace: ns, Inventory: inv})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range diffs {
		got[d.Object.String()+" "+string(d.Action)] = d.Diff
	}
	changed, created := got["Secret/"+ns+"/creds configured"], got["Secret/"+ns+"/fresh created"]
	for _, want := range []string{"-  password: '*** (before)'", "+  password: '*** (after)'", "  user: '***'"} {
		if !strings.Contains(changed, want) {
			t.Errorf("diff of creds lacks %q:\n%s", want, changed)
		}
	}
	if !strings.Contains(created, "+  token: '***'") {
		t.Errorf("diff of fresh:\n%s", created)
	}
	for _, d := range got {
		for _, secret := range []string{"hunter2", "correcthorse", "s3cret", "aHVudGVyMg", "Y29ycmVjdGhvcnNl", "czNjcmV0", "YWRtaW4"} {
			if strings.Contains(d, secret) {
				t.Errorf("a diff shows a secret value (%s):\n%s", secret, d)
			}
		}
	}

	// The prune of a Secret does not show its values either.
	diffs, err = m.Diff(context.Background(), objects(t, ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n"), DiffOptions{DefaultNamespace: ns, Inventory: inv, Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		if d.Action == Pruned && (strings.Contains(d.Diff, "aHVudGVyMg") || strings.Contains(d.Diff, "hunter2") || !strings.Contains(d.Diff, "-  password: '***'")) {
			t.Errorf("diff of the pruned %s:\n%s", d.Object, d.Diff)
		}
	}
}

// An object in a namespace that neither exists nor comes with the set is
// an error, as its apply would be, not "created".
func TestDiffOfAMissingNamespace(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	_, err := m.Diff(context.Background(), objects(t, ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: "+ns+"-missing}\n"), DiffOptions{DefaultNamespace: ns})
	if err == nil || !strings.Contains(err.Error(), "ConfigMap/"+ns+"-missing/a") || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("diff into a missing namespace: %v", err)
	}
}

// A diff of an empty set refuses as the apply would, unless it may be
// empty; then it shows every member pruned.
func TestDiffOfAnEmptySet(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "emptied", Namespace: ns}
	apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	if _, err := m.Diff(context.Background(), nil, DiffOptions{DefaultNamespace: ns, Inventory: inv, Prune: true}); !errors.Is(err, ErrEmptySet) {
		t.Fatalf("diff of an empty set: %v; want %v", err, ErrEmptySet)
	}
	diffs, err := m.Diff(context.Background(), nil, DiffOptions{DefaultNamespace: ns, Inventory: inv, Prune: true, AllowEmpty: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 2 || diffs[0].Action != Pruned || diffs[1].Action != Pruned {
		t.Errorf("diff of an allowed empty set: %+v", diffs)
	}
}
