package deploy

import (
	"context"
	"strings"
	"testing"
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
