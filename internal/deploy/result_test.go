package deploy

import "testing"

func TestChangeSetSummary(t *testing.T) {
	cs := &ChangeSet{}
	if got := cs.Summary(); got != "nothing to do" {
		t.Errorf("empty set: %q", got)
	}
	for _, a := range []Action{Unchanged, Created, Failed, Created, Pruned} {
		cs.add(Change{Object: ObjectID{Kind: "ConfigMap", Name: string(a)}, Action: a})
	}
	if got, want := cs.Summary(), "2 created, 1 unchanged, 1 pruned, 1 failed"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}

func TestProgressCounts(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{StageNamespaces.count(1), "1 namespace"},
		{StageNamespaces.count(10), "10 namespaces"},
		{StageClusterScoped.count(1), "1 cluster-scoped object"},
		{StageCRDs.count(2), "2 CRDs"},
		{plural(1, "object"), "1 object"},
		{plural(0, "object"), "0 objects"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
