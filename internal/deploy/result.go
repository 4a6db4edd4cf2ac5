package deploy

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Action is what happened to an object.
type Action string

// The actions a deploy reports.
const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	Pruned     Action = "pruned"
	Kept       Action = "kept" // left the set but stays (see the message: kix.dev/prune: disabled, or a Namespace holding others' objects)
	Failed     Action = "failed"
)

// Change is one object's result. Its JSON form is what `kix apply -o json`
// prints, one per object.
type Change struct {
	Object ObjectID `json:"object"`
	Action Action   `json:"action"`
	// Status is the object's readiness after a --wait (kstatus: Current,
	// InProgress, Failed, ...), with Message saying more.
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	DryRun  bool   `json:"dryRun,omitempty"`
	stage   Stage
}

// ChangeSet is the result of an apply or a prune.
type ChangeSet struct {
	Inventory string   `json:"inventory,omitempty"` // namespace/name
	Changes   []Change `json:"changes"`
	mu        sync.Mutex
}

func (cs *ChangeSet) add(c Change) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.Changes = append(cs.Changes, c)
}

// Sort orders changes by stage, then ID, as they were applied.
func (cs *ChangeSet) Sort() {
	slices.SortStableFunc(cs.Changes, func(a, b Change) int {
		if a.stage != b.stage {
			return int(a.stage) - int(b.stage)
		}
		return compareIDs(a.Object, b.Object)
	})
}

// Count returns how many changes had action a.
func (cs *ChangeSet) Count(a Action) int {
	n := 0
	for _, c := range cs.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

// written counts the changes that wrote to the cluster (or would have, in
// a dry run): all but the unchanged.
func (cs *ChangeSet) written() int { return len(cs.Changes) - cs.Count(Unchanged) }

// Summary counts the changes by action, in the order they happen
// ("2 created, 1 unchanged, 1 pruned"), or says "nothing to do".
func (cs *ChangeSet) Summary() string {
	var parts []string
	for _, a := range []Action{Created, Configured, Unchanged, Pruned, Kept, Failed} {
		if n := cs.Count(a); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, a))
		}
	}
	if len(parts) == 0 {
		return "nothing to do"
	}
	return strings.Join(parts, ", ")
}
