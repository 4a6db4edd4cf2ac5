package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/kix-project/kix/internal/version"
)

// Labels and annotations kix reads and writes. The applyset.kubernetes.io
// ones follow KEP-3659 (ApplySets), so kubectl and other tools that read
// ApplySets see kix's membership.
const (
	// PartOfLabel marks a member of an inventory: its value is the ID.
	PartOfLabel = "applyset.kubernetes.io/part-of"
	// ParentIDLabel marks the inventory's parent object.
	ParentIDLabel = "applyset.kubernetes.io/id"
	// ToolingAnnotation names the tool that manages the set: kix/<version>.
	ToolingAnnotation = "applyset.kubernetes.io/tooling"
	// GroupKindsAnnotation lists the group-kinds the set's members have.
	GroupKindsAnnotation = "applyset.kubernetes.io/contains-group-kinds"
	// NamespacesAnnotation lists the namespaces members are in, other than
	// the parent's.
	NamespacesAnnotation = "applyset.kubernetes.io/additional-namespaces"
	// ChecksumAnnotation is, on a member, the checksum of its desired
	// content as last applied; on the parent, the checksum of the whole set.
	ChecksumAnnotation = "kix.dev/checksum"
	// InventoryAnnotation names, on a member, its inventory: namespace/name.
	InventoryAnnotation = "kix.dev/inventory"
	// PruneAnnotation set to "disabled" keeps an object when it leaves the
	// set: prune reports it and leaves it alone.
	PruneAnnotation = "kix.dev/prune"
)

// KeptAsAsked is the message of a member a prune kept because it is
// annotated kix.dev/prune: disabled; other kept members say what keeps them.
const KeptAsAsked = PruneAnnotation + ": disabled"

// Inventory is a named set of objects that kix applies and prunes
// together. It is recorded as an ApplySet whose parent is a ConfigMap of
// that name: its ID labels every member, and the parent lists the
// group-kinds and namespaces where members live, so a prune finds every
// member with one labelled list per group-kind and namespace.
type Inventory struct {
	Name      string
	Namespace string
}

var parentGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// ID is the ApplySet ID: applyset-<base64url(sha256(name.namespace.kind.group))>-v1.
func (inv Inventory) ID() string {
	sum := sha256.Sum256([]byte(strings.Join([]string{inv.Name, inv.Namespace, "ConfigMap", ""}, ".")))
	return "applyset-" + base64.RawURLEncoding.EncodeToString(sum[:]) + "-v1"
}

func (inv Inventory) String() string { return "inventory " + inv.Namespace + "/" + inv.Name }

// home is the Namespace the parent lives in, as a member would name it.
func (inv Inventory) home() ObjectID { return ObjectID{Kind: "Namespace", Name: inv.Namespace} }

// inventoryState is what the parent object records.
type inventoryState struct {
	exists     bool
	uid        types.UID
	groupKinds sets.Set[schema.GroupKind]
	namespaces sets.Set[string] // including the parent's
	checksum   string
	tooling    string
}

// records reports whether the parent already says what st would write.
func (old *inventoryState) records(st *inventoryState) bool {
	return old != nil && old.exists && old.tooling == tooling() && old.checksum == st.checksum &&
		old.groupKinds.Equal(st.groupKinds) && old.namespaces.Equal(st.namespaces)
}

func tooling() string { return "kix/" + version.Get().Version }

// readInventory reads the parent, if there is one, and checks that it is
// a kix inventory with this ID.
func (m *Manager) readInventory(ctx context.Context, inv Inventory) (*inventoryState, error) {
	st := &inventoryState{groupKinds: sets.New[schema.GroupKind](), namespaces: sets.New[string]()}
	parent, err := m.client.Resource(parentGVR).Namespace(inv.Namespace).Get(ctx, inv.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", inv, err)
	}
	if got := parent.GetLabels()[ParentIDLabel]; got != inv.ID() {
		return nil, fmt.Errorf("%s: ConfigMap %s/%s exists but is not this inventory's ApplySet parent (label %s is %q)", inv, inv.Namespace, inv.Name, ParentIDLabel, got)
	}
	if tool := parent.GetAnnotations()[ToolingAnnotation]; !strings.HasPrefix(tool, "kix/") {
		return nil, fmt.Errorf("%s: the ApplySet is managed by %q, not kix", inv, tool)
	}
	st.exists, st.uid = true, parent.GetUID()
	ann := parent.GetAnnotations()
	for _, gk := range splitList(ann[GroupKindsAnnotation]) {
		st.groupKinds.Insert(schema.ParseGroupKind(gk))
	}
	st.namespaces.Insert(splitList(ann[NamespacesAnnotation])...)
	st.namespaces.Insert(inv.Namespace)
	st.checksum = ann[ChecksumAnnotation]
	st.tooling = ann[ToolingAnnotation]
	return st, nil
}

// writeInventory records a set's group-kinds and namespaces on the parent,
// creating it if needed.
func (m *Manager) writeInventory(ctx context.Context, inv Inventory, st *inventoryState, dryRun bool) error {
	st.namespaces.Insert(inv.Namespace)
	gks := make([]string, 0, st.groupKinds.Len())
	for gk := range st.groupKinds {
		gks = append(gks, gk.String())
	}
	slices.Sort(gks)
	namespaces := sets.List(st.namespaces.Clone().Delete(inv.Namespace))
	parent := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata": map[string]any{
			"name":      inv.Name,
			"namespace": inv.Namespace,
			"labels":    map[string]any{ParentIDLabel: inv.ID()},
			"annotations": map[string]any{
				ToolingAnnotation:    tooling(),
				GroupKindsAnnotation: strings.Join(gks, ","),
				NamespacesAnnotation: strings.Join(namespaces, ","),
				ChecksumAnnotation:   st.checksum,
			},
		},
	}}
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if _, err := m.client.Resource(parentGVR).Namespace(inv.Namespace).Apply(ctx, inv.Name, parent, opts); err != nil {
		return fmt.Errorf("writing %s: %w", inv, err)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// Record is what an inventory's parent records: the group-kinds and
// namespaces its members may be of.
type Record struct {
	GroupKinds []schema.GroupKind
	Namespaces []string // beside the parent's own
}

// Recorded returns what the inventory's parent records, nil if there is
// no parent.
func (m *Manager) Recorded(ctx context.Context, inv Inventory) (*Record, error) {
	st, err := m.readInventory(ctx, inv)
	if err != nil || !st.exists {
		return nil, err
	}
	r := &Record{Namespaces: sets.List(st.namespaces.Clone().Delete(inv.Namespace))}
	for gk := range st.groupKinds {
		r.GroupKinds = append(r.GroupKinds, gk)
	}
	slices.SortFunc(r.GroupKinds, func(a, b schema.GroupKind) int { return strings.Compare(a.String(), b.String()) })
	return r, nil
}

// state is the record as a parent that is gone would have held it.
func (r *Record) state(inv Inventory) *inventoryState {
	st := &inventoryState{groupKinds: sets.New(r.GroupKinds...), namespaces: sets.New(r.Namespaces...)}
	st.namespaces.Insert(inv.Namespace)
	return st
}

// intentWriter records, before a stage is applied, that the inventory may
// have members of the new set's group-kinds and namespaces as well as the
// old ones. It writes once, as early as the parent's namespace exists.
type intentWriter struct {
	m      *Manager
	inv    *Inventory
	old    *inventoryState
	plan   *plan
	dryRun bool
	done   bool
}

func (w *intentWriter) before(ctx context.Context, s Stage) error {
	if w.inv == nil || w.done {
		return nil
	}
	st := &inventoryState{
		groupKinds: w.old.groupKinds.Union(sets.KeySet(w.plan.groupKinds())),
		namespaces: w.old.namespaces.Union(sets.KeySet(w.plan.namespaces())),
		checksum:   w.old.checksum,
	}
	st.namespaces.Insert(w.inv.Namespace)
	if w.old.records(st) {
		w.done = true
		return nil
	}
	err := w.m.writeInventory(ctx, *w.inv, st, w.dryRun)
	if apierrors.IsNotFound(err) {
		switch {
		case !w.plan.namespaceObjects()[w.inv.Namespace]:
			return fmt.Errorf("%s: its namespace %q does not exist, and the set does not create it (--inventory-namespace names it)", w.inv, w.inv.Namespace)
		case s == StageNamespaces:
			return nil // the parent's namespace comes with this set; try after it
		case w.dryRun:
			err = nil // a dry run did not create it
		}
	}
	if err != nil {
		return err
	}
	w.done = true
	return nil
}
