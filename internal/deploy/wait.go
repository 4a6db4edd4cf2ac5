package deploy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultTimeout bounds a --wait.
const DefaultTimeout = 5 * time.Minute

// wait polls the applied objects until kstatus says each is Current (or
// Failed), up to opts.Timeout, and records each one's status.
func (m *Manager) wait(ctx context.Context, objs map[ObjectID]*applied, opts ApplyOptions, cs *ChangeSet) error {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	results := map[ObjectID]*status.Result{}
	pending := maps.Clone(objs)
	m.refresh(ctx, pending)
	for {
		for id, a := range pending {
			r := &status.Result{Status: status.UnknownStatus, Message: "not read yet"}
			if a.obj != nil {
				var err error
				if r, err = status.Compute(a.obj); err != nil {
					r = &status.Result{Status: status.UnknownStatus, Message: err.Error()}
				}
			}
			results[id] = r
			if r.Status == status.CurrentStatus || r.Status == status.FailedStatus {
				delete(pending, id)
			}
		}
		if len(pending) == 0 {
			break
		}
		opts.progress("waiting for %d of %d objects: %s (%s)", len(pending), len(objs), describePending(pending, results), time.Since(start).Round(time.Second))
		select {
		case <-ctx.Done():
			recordStatus(cs, results, start)
			if parent.Err() != nil {
				return parent.Err()
			}
			return fmt.Errorf("timed out after %s waiting for %s", timeout, describePending(pending, results))
		case <-time.After(time.Second):
		}
		m.refresh(ctx, pending)
	}
	recordStatus(cs, results, start)
	var failed []string
	for id, r := range results {
		if r.Status == status.FailedStatus {
			failed = append(failed, fmt.Sprintf("%s: %s", id, r.Message))
		}
	}
	if len(failed) > 0 {
		slices.Sort(failed)
		return fmt.Errorf("not ready: %s", strings.Join(failed, "; "))
	}
	return nil
}

// refresh reads the pending objects again.
func (m *Manager) refresh(ctx context.Context, pending map[ObjectID]*applied) {
	var list []*applied
	for _, a := range pending {
		list = append(list, a)
	}
	forEach(ctx, m.workers, list, func(ctx context.Context, a *applied) error {
		o, err := m.resourceFor(a.item.obj, a.item.mapping).Get(ctx, a.item.id.Name, metav1.GetOptions{})
		if err == nil {
			a.obj = o
		} else if apierrors.IsNotFound(err) {
			a.obj = a.item.obj // deleted behind our back: kstatus will say so
		}
		return nil
	})
}

func describePending(pending map[ObjectID]*applied, results map[ObjectID]*status.Result) string {
	var ids []ObjectID
	for id := range pending {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareIDs)
	var parts []string
	for i, id := range ids {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(ids)-3))
			break
		}
		msg := ""
		if r := results[id]; r != nil && r.Message != "" {
			msg = ": " + r.Message
		}
		parts = append(parts, id.String()+msg)
	}
	return strings.Join(parts, "; ")
}

func recordStatus(cs *ChangeSet, results map[ObjectID]*status.Result, start time.Time) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for i := range cs.Changes {
		c := &cs.Changes[i]
		if r := results[c.Object]; r != nil {
			c.Status = string(r.Status)
			if r.Status == status.CurrentStatus {
				c.Message = fmt.Sprintf("ready after %s", time.Since(start).Round(time.Second))
			} else {
				c.Message = r.Message
			}
		}
	}
}
