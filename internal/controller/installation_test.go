package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/catalog"
	"github.com/kix-project/kix/internal/deploy"
	"github.com/kix-project/kix/test/fixture"
)

// publishCatalog publishes test/nix/catalog.nix as kix catalog publish
// does.
func publishCatalog(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	file := filepath.Join(fixture.Dir(), "catalog.nix")
	blocks, err := catalog.Read(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	source, err := catalog.Publishable(ctx, file, "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := deploy.NewManager(kube.Get(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	inv := deploy.Inventory{Name: "kix-catalog-catalog", Namespace: "default"}
	if _, err := m.Apply(ctx, catalog.Objects(blocks, "catalog", source), deploy.ApplyOptions{Inventory: &inv, Prune: true}); err != nil {
		t.Fatal(err)
	}
}

// startInstallations runs the controller with the catalogue published and
// deletes the test's Installations, while it still runs, when the test
// ends: none is left with a finalizer no controller removes.
func startInstallations(t *testing.T) (client.Client, string) {
	t.Helper()
	cl, _ := startController(t)
	publishCatalog(t)
	return cl, installNamespace(t, cl)
}

// installNamespace makes a namespace for a test's Installations.
func installNamespace(t *testing.T, cl client.Client) string {
	t.Helper()
	ns := kube.Get(t).Namespace(t)
	t.Cleanup(func() {
		ctx := context.Background()
		if err := cl.DeleteAllOf(ctx, &v1alpha1.Installation{}, client.InNamespace(ns)); err != nil {
			t.Errorf("deleting the Installations: %v", err)
			return
		}
		eventually(t, 30*time.Second, "Installations gone", func() (bool, string) {
			var list v1alpha1.InstallationList
			err := cl.List(ctx, &list, client.InNamespace(ns))
			left := []string{fmt.Sprint(err)}
			for _, i := range list.Items {
				if c := readyCondition(i.Status.Conditions); c != nil {
					left = append(left, i.Name+": "+c.Reason+": "+c.Message)
				}
			}
			return err == nil && len(list.Items) == 0, strings.Join(left, "; ")
		})
	})
	return ns
}

func newInstallation(ns, name, block, version, values string) *v1alpha1.Installation {
	inst := &v1alpha1.Installation{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.InstallationSpec{Block: block, Version: version},
	}
	if values != "" {
		inst.Spec.Values = &runtime.RawExtension{Raw: []byte(values)}
	}
	return inst
}

// waitReady waits until the Installation's Ready condition, for its
// current generation, has the status and reason.
func waitReady(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) *v1alpha1.Installation {
	t.Helper()
	var inst v1alpha1.Installation
	direct := newClient(t) // sees the newest generation at once; the cache may lag
	eventually(t, 90*time.Second, fmt.Sprintf("Installation %s/%s Ready=%s %s", ns, name, status, reason), func() (bool, string) {
		if err := direct.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &inst); err != nil {
			return false, err.Error()
		}
		c := readyCondition(inst.Status.Conditions)
		if c == nil {
			return false, "no Ready condition"
		}
		return c.Status == status && c.Reason == reason && c.ObservedGeneration == inst.Generation, c.Reason + ": " + c.Message
	})
	return &inst
}

func configMap(t *testing.T, ns, name string) (*corev1.ConfigMap, error) {
	t.Helper()
	var cm corev1.ConfigMap
	err := newClient(t).Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &cm)
	return &cm, err
}

func waitConfigMap(t *testing.T, ns, name, what string, cond func(*corev1.ConfigMap, error) bool) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("ConfigMap %s/%s %s", ns, name, what), func() (bool, string) {
		cm, err := configMap(t, ns, name)
		return cond(cm, err), fmt.Sprint(cm.Data, err)
	})
}

func TestCatalogueIsBrowsable(t *testing.T) {
	startInstallations(t)
	table := getTable(t, "/apis/kix.dev/v1alpha1/buildingblocks", "labelSelector", catalog.LabelCatalog+"=catalog")
	var names []string
	for _, c := range table.ColumnDefinitions {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"Name", "Block", "Version", "Description", "Owner", "Age"}) {
		t.Errorf("columns %v", names)
	}
	var rows []string
	for _, r := range table.Rows {
		rows = append(rows, fmt.Sprint(r.Cells[:3]...))
	}
	want := []string{"broken-0.1broken0.1", "fussy-0.1fussy0.1", "hello-web-1.0hello-web1.0", "hello-web-2.0hello-web2.0"}
	if !slices.Equal(rows, want) {
		t.Errorf("rows %q, want %q", rows, want)
	}
}

// An Installation's objects appear; a hand edit is reverted; a new version
// prunes what it dropped; deleting it removes everything.
func TestInstallationLifecycle(t *testing.T) {
	cl, ns := startInstallations(t)
	ctx := context.Background()
	if err := cl.Create(ctx, newInstallation(ns, "web", "hello-web", "1.0", "")); err != nil {
		t.Fatal(err)
	}
	inst := waitReady(t, ns, "web", metav1.ConditionTrue, ReasonApplied)
	if inst.Status.Objects != 3 || inst.Status.BuildingBlock != "hello-web-1.0" || !strings.HasPrefix(inst.Status.StorePath, "/nix/store/") {
		t.Errorf("status %+v", inst.Status)
	}
	if !slices.Contains(inst.Finalizers, installationFinalizer) {
		t.Errorf("finalizers %v", inst.Finalizers)
	}
	for _, name := range []string{"greeting", "legacy"} {
		cm, err := configMap(t, ns, name)
		if err != nil {
			t.Fatal(err)
		}
		if cm.Labels[LabelInstallation] != "web" || cm.Labels[LabelInstallationNamespace] != ns {
			t.Errorf("%s labels %v", name, cm.Labels)
		}
	}

	// kubectl edit: the drift reconciler puts it back.
	update(t, newClient(t), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "greeting"}}, func(cm *corev1.ConfigMap) {
		cm.Data["greeting"] = "edited by hand"
	})
	waitConfigMap(t, ns, "greeting", "reverted", func(cm *corev1.ConfigMap, err error) bool {
		return err == nil && cm.Data["greeting"] == "Hello from the catalogue"
	})

	// Upgrade: 2.0 has no legacy ConfigMap.
	update(t, cl, inst, func(i *v1alpha1.Installation) { i.Spec.Version = "2.0" })
	inst = waitReady(t, ns, "web", metav1.ConditionTrue, ReasonApplied)
	if inst.Status.BuildingBlock != "hello-web-2.0" || inst.Status.Objects != 2 {
		t.Errorf("after the upgrade: status %+v", inst.Status)
	}
	if _, err := configMap(t, ns, "legacy"); !apierrors.IsNotFound(err) {
		t.Errorf("legacy after the upgrade: %v", err)
	}
	if cm, err := configMap(t, ns, "greeting"); err != nil || cm.Data["version"] != "2.0" {
		t.Errorf("greeting after the upgrade: %v %v", cm.Data, err)
	}

	// Delete: objects, the inventory and the finalizer go.
	if err := cl.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the Installation gone", func() (bool, string) {
		err := cl.Get(ctx, client.ObjectKeyFromObject(inst), &v1alpha1.Installation{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	for _, name := range []string{"greeting", "kix-installation-web"} {
		if _, err := configMap(t, ns, name); !apierrors.IsNotFound(err) {
			t.Errorf("%s after the delete: %v", name, err)
		}
	}
}

// Values make the tenant's own block, shown as a BuildingBlock of its own
// and gone with the Installation.
func TestInstallationWithValues(t *testing.T) {
	cl, ns := startInstallations(t)
	ctx := context.Background()
	inst := newInstallation(ns, "custom", "hello-web", "1.0", `{"greeting":"Hi, tenant","replicas":2}`)
	if err := cl.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	inst = waitReady(t, ns, "custom", metav1.ConditionTrue, ReasonApplied)
	var own v1alpha1.BuildingBlock
	if err := newClient(t).Get(ctx, client.ObjectKey{Name: inst.Status.BuildingBlock}, &own); err != nil {
		t.Fatalf("the tenant's block %q: %v", inst.Status.BuildingBlock, err)
	}
	if own.Spec.Owner == nil || own.Spec.Owner.Namespace != ns || own.Spec.Owner.Installation != "custom" || !strings.HasPrefix(own.Name, "hello-web-1.0-") {
		t.Errorf("tenant block %s owner %+v", own.Name, own.Spec.Owner)
	}
	var published v1alpha1.BuildingBlock
	if err := cl.Get(ctx, client.ObjectKey{Name: "hello-web-1.0"}, &published); err != nil {
		t.Fatal(err)
	}
	if own.Spec.Manifests == published.Spec.Manifests || inst.Status.StorePath != own.Spec.Manifests {
		t.Errorf("manifests: own %s, published %s, applied %s", own.Spec.Manifests, published.Spec.Manifests, inst.Status.StorePath)
	}
	if cm, err := configMap(t, ns, "greeting"); err != nil || cm.Data["greeting"] != "Hi, tenant" {
		t.Errorf("greeting: %v %v", cm.Data, err)
	}

	// Another tenant cannot install this tenant's block by naming it as a
	// version of the published one.
	other := installNamespace(t, cl)
	thief := newInstallation(other, "thief", "hello-web", strings.TrimPrefix(own.Name, "hello-web-"), "")
	if err := cl.Create(ctx, thief); err != nil {
		t.Fatal(err)
	}
	waitReady(t, other, "thief", metav1.ConditionFalse, ReasonBlockNotFound)
	nothingApplied(t, other, "thief")

	// New values: a new block, the old one removed.
	update(t, cl, inst, func(i *v1alpha1.Installation) { i.Spec.Values.Raw = []byte(`{"greeting":"Hello again"}`) })
	waitConfigMap(t, ns, "greeting", "with the new values", func(cm *corev1.ConfigMap, err error) bool {
		return err == nil && cm.Data["greeting"] == "Hello again"
	})
	eventually(t, 30*time.Second, "only the current tenant block", func() (bool, string) {
		names := tenantBlocks(t, ns, "custom")
		return len(names) == 1 && names[0] != own.Name, fmt.Sprint(names)
	})

	// A tenant block made from an earlier publish of the version (another
	// source) is made again from the current one.
	inst = waitReady(t, ns, "custom", metav1.ConditionTrue, ReasonApplied)
	direct := newClient(t)
	if err := direct.Get(ctx, client.ObjectKey{Name: inst.Status.BuildingBlock}, &own); err != nil {
		t.Fatal(err)
	}
	own.Spec.Source = &v1alpha1.BlockSource{File: published.Spec.Source.File, Attribute: "an-earlier-publish"}
	if err := direct.Update(ctx, &own); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the tenant block made from the current source", func() (bool, string) {
		err := direct.Get(ctx, client.ObjectKey{Name: own.Name}, &own)
		return err == nil && *own.Spec.Source == *published.Spec.Source, fmt.Sprintf("%+v %v", own.Spec.Source, err)
	})

	if err := cl.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "tenant blocks gone", func() (bool, string) {
		names := tenantBlocks(t, ns, "custom")
		return len(names) == 0, fmt.Sprint(names)
	})
}

// tenantBlocks lists the blocks made for an Installation, as their owner
// says.
func tenantBlocks(t *testing.T, ns, name string) []string {
	t.Helper()
	var list v1alpha1.BuildingBlockList
	if err := newClient(t).List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range list.Items {
		if o := b.Spec.Owner; o != nil && o.Namespace == ns && o.Installation == name {
			names = append(names, b.Name)
		}
	}
	return names
}

// reconcileByHand runs one Installation reconcile outside the manager and
// returns what controller-runtime would be told: Result{} and no error
// means nothing is retried until the Installation or the catalogue
// changes; an error means a retry after the rate limiter's growing
// back-off.
func reconcileByHand(t *testing.T, ns, name string) (ctrl.Result, error) {
	t.Helper()
	r := &InstallationReconciler{Client: newClient(t), Recorder: events.NewFakeRecorder(100), Deployers: NewDeployers(kube.Get(t).RESTConfig()), Resync: time.Hour}
	return r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
}

// reconcileByHandPastConflicts is reconcileByHand, tried again on a
// conflict: the manager's own retries may write the status meanwhile.
func reconcileByHandPastConflicts(t *testing.T, ns, name string) error {
	t.Helper()
	_, err := reconcileByHand(t, ns, name)
	for i := 0; i < 5 && apierrors.IsConflict(err); i++ {
		_, err = reconcileByHand(t, ns, name)
	}
	return err
}

// nothingApplied checks the Installation applied no object and made no
// inventory.
func nothingApplied(t *testing.T, ns, name string) {
	t.Helper()
	var list corev1.ConfigMapList
	if err := newClient(t).List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, cm := range list.Items {
		if cm.Labels[LabelInstallation] == name || cm.Name == "kix-installation-"+name {
			t.Errorf("ConfigMap %s applied", cm.Name)
		}
	}
}

// Bad input stops at a Ready=False condition with a reason, applies
// nothing and does not retry until the Installation or the catalogue
// changes; fixing the spec recovers.
func TestInstallationBadInput(t *testing.T) {
	cl, _ := startInstallations(t)
	ctx := context.Background()
	for _, tc := range []struct {
		inst   *v1alpha1.Installation
		reason string
		says   string
		fix    func(*v1alpha1.Installation)
	}{
		{newInstallation("", "unknown", "no-such-block", "1.0", ""), ReasonBlockNotFound, "no block no-such-block version 1.0",
			func(i *v1alpha1.Installation) { i.Spec.Block = "hello-web" }},
		{newInstallation("", "fussy", "fussy", "0.1", `{"colour":"red"}`), ReasonCustomizeFailed, "fussy: values must set size",
			func(i *v1alpha1.Installation) { i.Spec.Values.Raw = []byte(`{"size":3}`) }},
		{newInstallation("", "not-custom", "broken", "0.1", `{"a":1}`), ReasonNotCustomizable, "takes no values",
			func(i *v1alpha1.Installation) { i.Spec.Block, i.Spec.Version, i.Spec.Values = "hello-web", "2.0", nil }},
	} {
		t.Run(tc.inst.Name, func(t *testing.T) {
			ns := installNamespace(t, cl) // each fix installs the same objects
			tc.inst.Namespace = ns
			if err := cl.Create(ctx, tc.inst); err != nil {
				t.Fatal(err)
			}
			inst := waitReady(t, ns, tc.inst.Name, metav1.ConditionFalse, tc.reason)
			if c := readyCondition(inst.Status.Conditions); !strings.Contains(c.Message, tc.says) {
				t.Errorf("message %q does not say %q", c.Message, tc.says)
			}
			// The controller is idle on it: no requeue, so no write
			// races this reconcile.
			if res, err := reconcileByHand(t, ns, tc.inst.Name); err != nil || !res.IsZero() {
				t.Errorf("reconcile of a spec that cannot apply = %+v, %v; want no retry", res, err)
			}
			nothingApplied(t, ns, tc.inst.Name)
			update(t, cl, inst, tc.fix)
			waitReady(t, ns, tc.inst.Name, metav1.ConditionTrue, ReasonApplied)
		})
	}
}

// A block the cluster refuses is retried with a growing back-off, and
// nothing of it is half-applied.
func TestInstallationApplyFailureBacksOff(t *testing.T) {
	cl, ns := startInstallations(t)
	if err := cl.Create(context.Background(), newInstallation(ns, "broken", "broken", "0.1", "")); err != nil {
		t.Fatal(err)
	}
	inst := waitReady(t, ns, "broken", metav1.ConditionFalse, ReasonApplyFailed)
	if c := readyCondition(inst.Status.Conditions); !strings.Contains(c.Message, "NoSuchKind") {
		t.Errorf("message %q does not name the kind", c.Message)
	}
	// An error goes back to controller-runtime, whose rate limiter retries
	// with a growing back-off.
	err := reconcileByHandPastConflicts(t, ns, "broken")
	if err == nil || !strings.Contains(err.Error(), "NoSuchKind") {
		t.Errorf("reconcile of a block the cluster refuses returned %v; want its error, for a backed-off retry", err)
	}
	nothingApplied(t, ns, "broken")
	if _, err := configMap(t, ns, "broken-settings"); !apierrors.IsNotFound(err) {
		t.Errorf("broken-settings half-applied: %v", err)
	}
}

// A customisation that fails for a reason of the moment (here Nix cannot
// be started) is said in the status and retried with back-off, unlike
// values the block refuses; once Nix runs again, it applies.
func TestInstallationCustomizeRetriedWhenNixCannotRun(t *testing.T) {
	cl, ns := startInstallations(t)
	path := os.Getenv("PATH")
	t.Setenv("PATH", t.TempDir()) // no nix
	if err := cl.Create(context.Background(), newInstallation(ns, "later", "fussy", "0.1", `{"size":3}`)); err != nil {
		t.Fatal(err)
	}
	inst := waitReady(t, ns, "later", metav1.ConditionFalse, ReasonCustomizeFailed)
	if c := readyCondition(inst.Status.Conditions); !strings.Contains(c.Message, "running nix") {
		t.Errorf("message %q does not say nix could not run", c.Message)
	}
	err := reconcileByHandPastConflicts(t, ns, "later")
	if err == nil || !strings.Contains(err.Error(), "running nix") {
		t.Errorf("reconcile while nix cannot run returned %v; want its error, for a backed-off retry", err)
	}
	nothingApplied(t, ns, "later")
	os.Setenv("PATH", path)
	// The manager's next retry, after its back-off, applies it.
	waitReady(t, ns, "later", metav1.ConditionTrue, ReasonApplied)
}

// Two Installations of one namespace that apply the same objects do not
// fight over them: the second is refused, naming the first's inventory.
func TestInstallationsDoNotFight(t *testing.T) {
	cl, ns := startInstallations(t)
	ctx := context.Background()
	if err := cl.Create(ctx, newInstallation(ns, "first", "hello-web", "1.0", "")); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ns, "first", metav1.ConditionTrue, ReasonApplied)
	if err := cl.Create(ctx, newInstallation(ns, "second", "hello-web", "2.0", "")); err != nil {
		t.Fatal(err)
	}
	inst := waitReady(t, ns, "second", metav1.ConditionFalse, ReasonApplyFailed)
	if c := readyCondition(inst.Status.Conditions); !strings.Contains(c.Message, "belongs to inventory "+ns+"/kix-installation-first") {
		t.Errorf("message %q does not name the other Installation's inventory", c.Message)
	}
	if cm, err := configMap(t, ns, "greeting"); err != nil || cm.Labels[LabelInstallation] != "first" || cm.Data["version"] != "1.0" {
		t.Errorf("greeting: %v %v %v", cm.Labels, cm.Data, err)
	}
}

// An Installation waiting for a block is woken when the block is
// published, even one whose name does not fit in a label value.
func TestPublishedBlockWakesItsInstallations(t *testing.T) {
	cl, ns := startInstallations(t)
	ctx := context.Background()
	long := "a-block-whose-name-is-longer-than-the-sixty-three-characters-of-a-label"
	if err := cl.Create(ctx, newInstallation(ns, "waiting", long, "1.0", "")); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ns, "waiting", metav1.ConditionFalse, ReasonBlockNotFound)

	direct := newClient(t)
	var hello v1alpha1.BuildingBlock
	if err := direct.Get(ctx, client.ObjectKey{Name: catalog.ObjectName("hello-web", "1.0")}, &hello); err != nil {
		t.Fatal(err)
	}
	// Made as catalog.Objects makes it, under the long name.
	objs := catalog.Objects([]catalog.Block{{Name: long, Version: "1.0", Manifests: hello.Spec.Manifests}}, "test", "")
	var block v1alpha1.BuildingBlock
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs[0].Object, &block); err != nil {
		t.Fatal(err)
	}
	if err := direct.Create(ctx, &block); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = direct.Delete(context.Background(), &block) })
	waitReady(t, ns, "waiting", metav1.ConditionTrue, ReasonApplied)
}
