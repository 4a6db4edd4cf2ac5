package deploy

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/kix-project/kix/test/cluster"
)

func TestPruneSet(t *testing.T) {
	a := ObjectID{Kind: "ConfigMap", Namespace: "x", Name: "a"}
	b := ObjectID{Kind: "ConfigMap", Namespace: "x", Name: "b"}
	d := ObjectID{Group: "apps", Kind: "Deployment", Namespace: "x", Name: "a"}
	got := PruneSet([]ObjectID{d, b, a, b}, map[ObjectID]bool{a: true})
	if diff := cmp.Diff([]ObjectID{b, d}, got); diff != "" {
		t.Errorf("PruneSet (-want +got):\n%s", diff)
	}
	if got := PruneSet(nil, map[ObjectID]bool{a: true}); len(got) != 0 {
		t.Errorf("nothing to prune: %v", got)
	}
}

const threeObjects = twoConfigMaps + `
---
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData: {k: v}
`

func createHandMade(t *testing.T, ns, name string) {
	t.Helper()
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name}}}
	if _, err := dyn(t).Resource(configMaps).Namespace(ns).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Prune deletes exactly what left the set: hand-made objects and another
// inventory's objects in the same namespace survive.
func TestPruneDeletesExactlyWhatLeftTheSet(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	shop := &Inventory{Name: "shop", Namespace: ns}
	apply(t, m, objects(t, ns, threeObjects), ApplyOptions{DefaultNamespace: ns, Inventory: shop})
	apply(t, m, objects(t, ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n"), ApplyOptions{DefaultNamespace: ns, Inventory: &Inventory{Name: "other-set", Namespace: ns}, Prune: true})
	createHandMade(t, ns, "by-hand")

	onlyA := objects(t, ns, strings.Split(twoConfigMaps, "---")[0])
	cs := apply(t, m, onlyA, ApplyOptions{DefaultNamespace: ns, Inventory: shop, Prune: true})
	wantActions(t, cs, "ConfigMap/"+ns+"/a unchanged", "ConfigMap/"+ns+"/b pruned", "Secret/"+ns+"/s pruned")
	for _, c := range []struct {
		gvr  schema.GroupVersionResource
		name string
		want bool
	}{{configMaps, "a", true}, {configMaps, "b", false}, {secrets, "s", false}, {configMaps, "other", true}, {configMaps, "by-hand", true}} {
		if got := exists(t, c.gvr, ns, c.name); got != c.want {
			t.Errorf("%s %s exists: %v, want %v", c.gvr.Resource, c.name, got, c.want)
		}
	}
	parent, err := dyn(t).Resource(configMaps).Namespace(ns).Get(context.Background(), "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if gks := parent.GetAnnotations()[GroupKindsAnnotation]; gks != "ConfigMap" {
		t.Errorf("parent group-kinds %q after the prune, want ConfigMap", gks)
	}
}

func TestPruneRefusesAnEmptySet(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "set", Namespace: ns}
	apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	if _, err := m.Apply(context.Background(), nil, ApplyOptions{DefaultNamespace: ns, Inventory: inv, Prune: true}); !errors.Is(err, ErrEmptySet) {
		t.Fatalf("apply of an empty set with prune: %v", err)
	}
	if _, err := m.Prune(context.Background(), nil, ApplyOptions{DefaultNamespace: ns, Inventory: inv}); !errors.Is(err, ErrEmptySet) {
		t.Fatalf("prune of an empty set: %v", err)
	}
	if !exists(t, configMaps, ns, "a") {
		t.Fatal("a refused prune deleted something")
	}
	cs, err := m.Prune(context.Background(), nil, ApplyOptions{DefaultNamespace: ns, Inventory: inv, AllowEmpty: true})
	if err != nil {
		t.Fatal(err)
	}
	wantActions(t, cs, "ConfigMap/"+ns+"/a pruned", "ConfigMap/"+ns+"/b pruned")
	if exists(t, configMaps, ns, "a") || exists(t, configMaps, ns, "set") {
		t.Error("an allowed empty prune left members or the inventory")
	}
}

func TestPruneKeepsObjectsMarkedToStay(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "keep", Namespace: ns}
	set := strings.Replace(twoConfigMaps, "metadata: {name: b}", "metadata: {name: b, annotations: {kix.dev/prune: disabled}}", 1)
	apply(t, m, objects(t, ns, set), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	cs := apply(t, m, objects(t, ns, strings.Split(twoConfigMaps, "---")[0]), ApplyOptions{DefaultNamespace: ns, Inventory: inv, Prune: true})
	wantActions(t, cs, "ConfigMap/"+ns+"/a unchanged", "ConfigMap/"+ns+"/b kept")
	if !exists(t, configMaps, ns, "b") {
		t.Error("an object marked kix.dev/prune: disabled was deleted")
	}
}

func TestPruneDryRunChangesNothing(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "dry", Namespace: ns}
	apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	cs := apply(t, m, objects(t, ns, strings.Split(twoConfigMaps, "---")[0]), ApplyOptions{DefaultNamespace: ns, Inventory: inv, Prune: true, DryRun: true})
	wantActions(t, cs, "ConfigMap/"+ns+"/a unchanged", "ConfigMap/"+ns+"/b pruned")
	if !exists(t, configMaps, ns, "b") {
		t.Error("a dry-run prune deleted an object")
	}
	parent, _ := dyn(t).Resource(configMaps).Namespace(ns).Get(context.Background(), "dry", metav1.GetOptions{})
	if parent.GetAnnotations()[ChecksumAnnotation] == "" {
		t.Error("the parent lost its checksum")
	}
}

// An apply that dies half way (after recording its intent, before its
// prune) is completed by the next apply, and that one's prune is right.
func TestInterruptedApplyIsCompletedByTheNext(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "flaky", Namespace: ns}
	apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv})

	// The next set adds a Secret and a Deployment that will not become
	// ready; the apply is killed while it waits, after everything is
	// applied, before any prune or final inventory write.
	ctx, cancel := context.WithCancel(context.Background())
	withSecret := objects(t, ns, threeObjects+`
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: slow}
spec:
  replicas: 1
  selector: {matchLabels: {app: slow}}
  template:
    metadata: {labels: {app: slow}}
    spec: {containers: [{name: c, image: nix.internal/none}]}
`)
	_, err := m.Apply(ctx, withSecret, ApplyOptions{DefaultNamespace: ns, Inventory: inv, Prune: true, Wait: true,
		Progress: func(msg string) {
			if strings.HasPrefix(msg, "waiting") {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted apply returned %v", err)
	}
	if !exists(t, secrets, ns, "s") {
		t.Fatal("the Secret was not applied before the interruption")
	}

	// Back to only ConfigMap a: the prune must find the Secret and the
	// Deployment too, though the parent never recorded them as members.
	cs := apply(t, m, objects(t, ns, strings.Split(twoConfigMaps, "---")[0]), ApplyOptions{DefaultNamespace: ns, Inventory: inv, Prune: true})
	wantActions(t, cs, "ConfigMap/"+ns+"/a unchanged", "ConfigMap/"+ns+"/b pruned", "Secret/"+ns+"/s pruned", "Deployment/"+ns+"/slow pruned")
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	bin := filepath.Join(cluster.KubeBinDir(), "kubectl")
	cmd := exec.Command(bin, append([]string{"--kubeconfig", kube.Get(t).Info.Kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECTL_APPLYSET=true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// kix's inventories are ApplySets kubectl understands: kubectl computes
// the same ID for a parent, and lists the same members.
func TestInventoryIsAnApplySetKubectlReads(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)

	// kubectl makes an ApplySet of its own; its ID is what kix computes.
	file := filepath.Join(t.TempDir(), "cm.yaml")
	if err := os.WriteFile(file, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: by-kubectl}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "apply", "-n", ns, "--server-side", "--prune", "--applyset=configmap/kubectl-set", "-f", file)
	parent, err := dyn(t).Resource(configMaps).Namespace(ns).Get(context.Background(), "kubectl-set", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := parent.GetLabels()[ParentIDLabel], (Inventory{Name: "kubectl-set", Namespace: ns}).ID(); got != want {
		t.Errorf("kubectl's ApplySet ID %s, kix computes %s", got, want)
	}
	// kix will not take over a set another tool manages.
	_, err = m.Apply(context.Background(), objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: &Inventory{Name: "kubectl-set", Namespace: ns}})
	if err == nil || !strings.Contains(err.Error(), "kubectl") {
		t.Errorf("applying into kubectl's ApplySet: %v", err)
	}

	// kubectl lists kix's members by the ApplySet label.
	inv := &Inventory{Name: "kix-set", Namespace: ns}
	apply(t, m, objects(t, ns, threeObjects), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	parent, _ = dyn(t).Resource(configMaps).Namespace(ns).Get(context.Background(), "kix-set", metav1.GetOptions{})
	var kinds []string
	for _, gk := range strings.Split(parent.GetAnnotations()[GroupKindsAnnotation], ",") {
		kinds = append(kinds, strings.ToLower(gk)+"s")
	}
	out := kubectl(t, "get", strings.Join(kinds, ","), "-n", ns, "-l", PartOfLabel+"="+inv.ID(), "-o", "name")
	got := strings.Fields(out)
	slices.Sort(got)
	if diff := cmp.Diff([]string{"configmap/a", "configmap/b", "secret/s"}, got); diff != "" {
		t.Errorf("kubectl's view of the members (-want +got):\n%s", diff)
	}
}

// An object another inventory holds is refused, naming both, and nothing of
// the set is applied, not even the stages before the refused object's nor
// the set's parent; adopted, it moves to the new set, and the old set's
// prune leaves it alone.
func TestAnotherInventorysObjectIsRefusedUnlessAdopted(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	extra := ownNamespace(t, ns+"-extra")
	first, second := &Inventory{Name: "first", Namespace: ns}, &Inventory{Name: "second", Namespace: ns}
	apply(t, m, objects(t, ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {by: first}\n"), ApplyOptions{DefaultNamespace: ns, Inventory: first})

	both := objects(t, ns, "apiVersion: v1\nkind: Namespace\nmetadata: {name: "+extra+"}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: mine}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {by: second}\n")
	_, err := m.Apply(context.Background(), both, ApplyOptions{DefaultNamespace: ns, Inventory: second})
	var oe *ObjectError
	if !errors.As(err, &oe) || oe.ID.Name != "shared" || !strings.Contains(err.Error(), "belongs to inventory "+ns+"/first") {
		t.Fatalf("applying another set's object: %v", err)
	}
	if _, diffErr := m.Diff(context.Background(), both, DiffOptions{DefaultNamespace: ns, Inventory: second}); diffErr == nil || !strings.Contains(diffErr.Error(), "belongs to inventory") {
		t.Errorf("diff of another set's object: %v", diffErr)
	}
	if exists(t, configMaps, ns, "mine") || exists(t, namespaces, "", extra) {
		t.Error("the refused set was applied in part")
	}
	if exists(t, configMaps, ns, second.Name) {
		t.Error("the refused set's parent was written")
	}

	cs := apply(t, m, both, ApplyOptions{DefaultNamespace: ns, Inventory: second, Adopt: true})
	wantActions(t, cs, "Namespace/"+extra+" created", "ConfigMap/"+ns+"/mine created", "ConfigMap/"+ns+"/shared configured")
	cs = apply(t, m, nil, ApplyOptions{DefaultNamespace: ns, Inventory: first, Prune: true, AllowEmpty: true})
	if len(cs.Changes) != 0 || !exists(t, configMaps, ns, "shared") {
		t.Errorf("the old set's prune touched the adopted object: %v", actions(cs))
	}
}

// An object adopted with the same content it had in its old set still moves
// to the new set: being up to date covers the set kix would stamp on it.
func TestAdoptingAnUnchangedObjectMovesIt(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	first, second := &Inventory{Name: "first", Namespace: ns}, &Inventory{Name: "second", Namespace: ns}
	shared := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {same: content}\n"
	apply(t, m, objects(t, ns, shared), ApplyOptions{DefaultNamespace: ns, Inventory: first})

	cs := apply(t, m, objects(t, ns, shared), ApplyOptions{DefaultNamespace: ns, Inventory: second, Adopt: true})
	wantActions(t, cs, "ConfigMap/"+ns+"/shared configured")
	cs = apply(t, m, nil, ApplyOptions{DefaultNamespace: ns, Inventory: first, Prune: true, AllowEmpty: true})
	if len(cs.Changes) != 0 || !exists(t, configMaps, ns, "shared") {
		t.Errorf("the old set's prune touched the adopted object: %v", actions(cs))
	}
}

func terminating(t *testing.T, name string) bool {
	t.Helper()
	ns, err := dyn(t).Resource(namespaces).Get(context.Background(), name, metav1.GetOptions{})
	return err != nil || ns.GetDeletionTimestamp() != nil
}

// The Namespace that holds the inventory's parent stays while the parent
// does, and goes with it when the whole set goes: the Endpoints of the
// set's Service, which have no owner, do not keep it (they carry the
// Service's labels).
func TestPruneOfTheInventorysNamespace(t *testing.T) {
	m, _ := newManager(t)
	home := ownNamespace(t, kube.Get(t).Namespace(t)+"-inv")
	inv := &Inventory{Name: "app", Namespace: home}
	namespace := "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + home + "}\n---\n"
	config := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n"
	service := "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n"
	apply(t, m, objects(t, home, namespace+config+service), ApplyOptions{DefaultNamespace: home, Inventory: inv})
	endpoints := schema.GroupVersionResource{Version: "v1", Resource: "endpoints"}
	for deadline := time.Now().Add(30 * time.Second); !exists(t, endpoints, home, "web"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the endpoint controller made no Endpoints for the Service")
		}
	}

	cs := apply(t, m, objects(t, home, config+service), ApplyOptions{DefaultNamespace: home, Inventory: inv, Prune: true})
	wantActions(t, cs, "Namespace/"+home+" kept", "ConfigMap/"+home+"/cfg unchanged", "Service/"+home+"/web unchanged")
	if terminating(t, home) {
		t.Fatal("the inventory's namespace was deleted while the inventory stays")
	}
	apply(t, m, objects(t, home, namespace+config+service), ApplyOptions{DefaultNamespace: home, Inventory: inv, Prune: true})

	cs, err := m.Prune(context.Background(), nil, ApplyOptions{DefaultNamespace: home, Inventory: inv, AllowEmpty: true})
	if err != nil {
		t.Fatal(err)
	}
	wantActions(t, cs, "Namespace/"+home+" pruned", "ConfigMap/"+home+"/cfg pruned", "Service/"+home+"/web pruned")
	if !terminating(t, home) {
		t.Error("uninstalling the whole set left its namespace")
	}
}

// An apply without an inventory refuses a member of one: it would take
// its membership label away.
func TestApplyWithoutInventoryRefusesMembers(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: &Inventory{Name: "held", Namespace: ns}})
	_, err := m.Apply(context.Background(), objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns})
	if err == nil || !strings.Contains(err.Error(), "ConfigMap/"+ns+"/a: belongs to inventory "+ns+"/held") {
		t.Fatalf("apply of members without their inventory: %v", err)
	}
	a, err := dyn(t).Resource(configMaps).Namespace(ns).Get(context.Background(), "a", metav1.GetOptions{})
	if err != nil || a.GetLabels()[PartOfLabel] != (&Inventory{Name: "held", Namespace: ns}).ID() {
		t.Errorf("the member lost its label: %v %v", a.GetLabels(), err)
	}
}

// A Manager that read discovery before someone else installed a CRD still
// sees that kind's objects in a Namespace it would prune (the controller
// keeps its Managers for long): the Namespace is kept.
func TestNamespacePruneSeesKindsInstalledSince(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	held := ownNamespace(t, ns+"-held")
	inv := &Inventory{Name: "app", Namespace: ns}
	config := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n"
	apply(t, m, objects(t, ns, "apiVersion: v1\nkind: Namespace\nmetadata: {name: "+held+"}\n---\n"+config), ApplyOptions{DefaultNamespace: ns, Inventory: inv})

	// Someone else installs a CRD and puts an object of it in the Namespace.
	group := strings.ReplaceAll(ns, "-", "") + ".example.org"
	other, _ := newManager(t)
	apply(t, other, objects(t, ns, schemalessCRD(t, group, "gadgets", "Gadget")), ApplyOptions{DefaultNamespace: ns})
	gadget := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": group + "/v1", "kind": "Gadget", "metadata": map[string]any{"name": "g", "namespace": held},
	}}
	gadgets := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "gadgets"}
	if _, err := dyn(t).Resource(gadgets).Namespace(held).Create(context.Background(), gadget, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	cs := apply(t, m, objects(t, ns, config), ApplyOptions{DefaultNamespace: ns, Inventory: inv, Prune: true})
	wantActions(t, cs, "Namespace/"+held+" kept", "ConfigMap/"+ns+"/cfg unchanged")
	if terminating(t, held) {
		t.Error("the Namespace holding another's Gadget was deleted")
	}
}

// A member deleted and made again since the prune listed it is not
// deleted: the object there now was never judged. One whose name is free
// again is reported gone.
func TestPruneLeavesAMemberMadeAgain(t *testing.T) {
	m, _ := newManager(t)
	ns := kube.Get(t).Namespace(t)
	inv := &Inventory{Name: "again", Namespace: ns}
	apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	listed, err := m.members(context.Background(), *inv, &inventoryState{
		groupKinds: sets.New(schema.GroupKind{Kind: "ConfigMap"}),
		namespaces: sets.New(ns),
	})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*member{}
	for _, mb := range listed {
		byName[mb.id.Name] = mb
	}
	if byName["a"] == nil || byName["b"] == nil {
		t.Fatalf("members %v, want ConfigMaps a and b", listed)
	}
	for _, name := range []string{"a", "b"} {
		if err := dyn(t).Resource(configMaps).Namespace(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	apply(t, m, objects(t, ns, twoConfigMaps), ApplyOptions{DefaultNamespace: ns, Inventory: inv})
	if err := dyn(t).Resource(configMaps).Namespace(ns).Delete(context.Background(), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	c, err := m.pruneOne(context.Background(), byName["b"], false)
	if err == nil || c.Action != Failed || !strings.Contains(c.Message, "replaced since it was listed") {
		t.Errorf("pruning a member made again since it was listed: %s %q, %v", c.Action, c.Message, err)
	}
	if !exists(t, configMaps, ns, "b") {
		t.Error("the member made again was deleted unjudged")
	}
	c, err = m.pruneOne(context.Background(), byName["a"], false)
	if err != nil || c.Action != Pruned || c.Message != "already gone" {
		t.Errorf("pruning a member deleted since it was listed: %s %q, %v", c.Action, c.Message, err)
	}
}
