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
