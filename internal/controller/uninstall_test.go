package controller

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/catalog"
	"github.com/kix-project/kix/internal/deploy"
)

// Deleting an Installation whose service account may not delete its
// objects keeps it, says why in its Ready condition and retries; once the
// account may, the objects and the Installation go.
func TestInstallationDeleteRefused(t *testing.T) {
	cl, ns := startInstallations(t)
	ctx := context.Background()
	serviceAccount(t, ns, "installer")
	noDelete := slices.DeleteFunc(slices.Clone(installerVerbs), func(v string) bool { return v == "delete" })
	grant(t, ns, "installer", noDelete, noDelete)
	inst := newInstallation(ns, "web", "hello-web", "1.0", "")
	createAs(t, cl, inst, "installer")
	waitReady(t, ns, "web", metav1.ConditionTrue, ReasonApplied)
	if err := cl.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	inst = waitReady(t, ns, "web", metav1.ConditionFalse, ReasonDeleteFailed)
	if msg := readyCondition(inst.Status.Conditions).Message; !strings.Contains(msg, "forbidden") || !strings.Contains(msg, "system:serviceaccount:"+ns+":installer") {
		t.Errorf("message %q does not say the service account was refused", msg)
	}
	if _, err := configMap(t, ns, "greeting"); err != nil {
		t.Errorf("greeting while the delete is refused: %v", err)
	}

	grant(t, ns, "installer", installerVerbs, installerVerbs)
	eventually(t, 60*time.Second, "the Installation gone", func() (bool, string) {
		err := cl.Get(ctx, client.ObjectKeyFromObject(inst), &v1alpha1.Installation{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	for _, name := range []string{"greeting", "kix-installation-web"} {
		if _, err := configMap(t, ns, name); !apierrors.IsNotFound(err) {
			t.Errorf("%s after the delete: %v", name, err)
		}
	}
}

// An Installation whose service account may not even read its inventory
// applied nothing (the inventory is written first), so deleting it has
// nothing to remove: it goes, rather than waiting for rights to delete.
func TestInstallationDeleteNeverApplied(t *testing.T) {
	cl, ns := startInstallations(t)
	ctx := context.Background()
	serviceAccount(t, ns, "installer")
	inst := newInstallation(ns, "web", "hello-web", "1.0", "")
	createAs(t, cl, inst, "installer")
	refusedAs(t, ns, "web", "installer")
	if err := cl.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the Installation gone", func() (bool, string) {
		var left v1alpha1.Installation
		err := newClient(t).Get(ctx, client.ObjectKeyFromObject(inst), &left)
		if err != nil {
			return apierrors.IsNotFound(err), err.Error()
		}
		if c := readyCondition(left.Status.Conditions); c != nil {
			return false, c.Reason + ": " + c.Message
		}
		return false, "still there"
	})
}

// Deleting a namespace deletes its Installations even when their service
// account may not delete their objects (or has lost its rights with the
// namespace's Roles): the namespace's deletion takes the objects.
func TestNamespaceDeleteWithRefusedInstallation(t *testing.T) {
	cl, _ := startInstallations(t)
	ctx := context.Background()
	direct := newClient(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ns-delete-"}}
	if err := direct.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.IgnoreNotFound(direct.Delete(context.Background(), ns)) })
	serviceAccount(t, ns.Name, "installer")
	noDelete := slices.DeleteFunc(slices.Clone(installerVerbs), func(v string) bool { return v == "delete" })
	grant(t, ns.Name, "installer", noDelete, noDelete)
	inst := newInstallation(ns.Name, "web", "hello-web", "1.0", "")
	createAs(t, cl, inst, "installer")
	waitReady(t, ns.Name, "web", metav1.ConditionTrue, ReasonApplied)

	if err := direct.Delete(ctx, ns); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the namespace gone", func() (bool, string) {
		var left v1alpha1.InstallationList
		_ = direct.List(ctx, &left, client.InNamespace(ns.Name))
		err := direct.Get(ctx, client.ObjectKeyFromObject(ns), &corev1.Namespace{})
		return apierrors.IsNotFound(err), fmt.Sprintf("%d Installations left; %v", len(left.Items), err)
	})
}

// The namespace's deletion takes only what is in it: an Installation with
// an object elsewhere that its account may not delete is kept, DeleteFailed,
// though its namespace is being deleted. (A finalizer on its inventory
// keeps the inventory there until the test ends, as a slow namespace
// deletion would.)
func TestNamespaceDeleteKeepsInstallationWithObjectsOutside(t *testing.T) {
	cl, _ := startController(t)
	ctx := context.Background()
	direct := newClient(t)
	noDelete := slices.DeleteFunc(slices.Clone(installerVerbs), func(v string) bool { return v == "delete" })
	ns, elsewhere, there := outsideBlock(t, noDelete)
	inst := newInstallation(ns.Name, "web", "outside", "1.0", "")
	createAs(t, cl, inst, "installer")
	waitReady(t, ns.Name, "web", metav1.ConditionTrue, ReasonApplied)
	// Its account may not delete the ConfigMap elsewhere either.
	if err := direct.Delete(ctx, there); err != nil {
		t.Fatal(err)
	}
	inventory := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "kix-installation-web"}}
	update(t, direct, inventory, func(cm *corev1.ConfigMap) { cm.Finalizers = append(cm.Finalizers, "kix.dev/test") })
	t.Cleanup(func() {
		// With the ConfigMap elsewhere gone, nothing the namespace's
		// deletion does not take is left: the Installation goes.
		_ = direct.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: elsewhere.Name, Name: "there"}})
		update(t, direct, inventory, func(cm *corev1.ConfigMap) { cm.Finalizers = nil })
		eventually(t, 90*time.Second, "the namespace gone", func() (bool, string) {
			err := direct.Get(ctx, client.ObjectKeyFromObject(ns), &corev1.Namespace{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
	})

	if err := direct.Delete(ctx, ns); err != nil {
		t.Fatal(err)
	}
	inst = waitReady(t, ns.Name, "web", metav1.ConditionFalse, ReasonDeleteFailed)
	if msg := readyCondition(inst.Status.Conditions).Message; !strings.Contains(msg, "kix-test-outside") {
		t.Errorf("message %q does not name what is outside the namespace", msg)
	}
	if _, err := configMap(t, elsewhere.Name, "there"); err != nil {
		t.Errorf("the ConfigMap elsewhere: %v", err)
	}
}

// outsideBlock publishes the catalogue of testdata/outside.nix, whose block
// has a ConfigMap in namespace kix-test-outside, and makes a namespace to
// install it in, with a service account "installer" granted verbs there,
// and edit in kix-test-outside through the RoleBinding returned.
func outsideBlock(t *testing.T, verbs []string) (ns, elsewhere *corev1.Namespace, there *rbacv1.RoleBinding) {
	t.Helper()
	ctx := context.Background()
	direct := newClient(t)
	blocks, err := catalog.Read(ctx, filepath.Join("testdata", "outside.nix"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := deploy.NewManager(kube.Get(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	catalogInv := deploy.Inventory{Name: "kix-catalog-outside", Namespace: "default"}
	if _, err := m.Apply(ctx, catalog.Objects(blocks, "outside", ""), deploy.ApplyOptions{Inventory: &catalogInv, Prune: true}); err != nil {
		t.Fatal(err)
	}
	elsewhere = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kix-test-outside"}}
	if err := direct.Create(ctx, elsewhere); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ns-outside-"}}
	if err := direct.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	serviceAccount(t, ns.Name, "installer")
	grant(t, ns.Name, "installer", verbs, verbs)
	there = &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: elsewhere.Name, GenerateName: "installer-"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns.Name, Name: "installer"}},
	}
	if err := direct.Create(ctx, there); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = direct.Delete(context.Background(), there) })
	return ns, elsewhere, there
}

// When the namespace's deletion takes the inventory before the
// Installation's uninstall reads it, the uninstall still finds and deletes
// what lies outside the namespace, through what the Installation's status
// recorded of the inventory.
func TestNamespaceDeleteRemovesObjectsOutsideWhenTheInventoryWentFirst(t *testing.T) {
	cl, _ := startController(t)
	ctx := context.Background()
	direct := newClient(t)
	ns, elsewhere, _ := outsideBlock(t, installerVerbs)
	// Rights that outlive the namespace's Roles, which its deletion takes
	// in any order.
	everywhere := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "installer-"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns.Name, Name: "installer"}},
	}
	if err := direct.Create(ctx, everywhere); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = direct.Delete(context.Background(), everywhere)
		_ = client.IgnoreNotFound(direct.Delete(context.Background(), ns))
		_ = direct.Delete(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: elsewhere.Name, Name: "there"}})
	})
	inst := newInstallation(ns.Name, "web", "outside", "1.0", "")
	createAs(t, cl, inst, "installer")
	applied := waitReady(t, ns.Name, "web", metav1.ConditionTrue, ReasonApplied)
	if r := applied.Status.Recorded; r == nil || !slices.Contains(r.Namespaces, elsewhere.Name) || !slices.Contains(r.GroupKinds, "ConfigMap") {
		t.Fatalf("status.recorded %+v, want ConfigMap and namespace %s", r, elsewhere.Name)
	}
	// As the namespace controller may: the inventory first, then the
	// Installation.
	if err := direct.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "kix-installation-web"}}); err != nil {
		t.Fatal(err)
	}
	if err := direct.Delete(ctx, ns); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the namespace gone", func() (bool, string) {
		err := direct.Get(ctx, client.ObjectKeyFromObject(ns), &corev1.Namespace{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if _, err := configMap(t, elsewhere.Name, "there"); !apierrors.IsNotFound(err) {
		t.Errorf("the ConfigMap outside the namespace after it went: %v", err)
	}
}

// failedObjects finds the objects in the deploy engine's errors, however
// joined and wrapped, and tells whether some failure names none.
func TestFailedObjects(t *testing.T) {
	a := deploy.ObjectID{Kind: "ConfigMap", Namespace: "team-a", Name: "a"}
	b := deploy.ObjectID{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "b"}
	forbidden := errors.New("forbidden")
	for _, tc := range []struct {
		err     error
		ids     []deploy.ObjectID
		unnamed bool
	}{
		{&deploy.ObjectError{ID: a, Err: forbidden}, []deploy.ObjectID{a}, false},
		{fmt.Errorf("removing: %w", errors.Join(&deploy.ObjectError{ID: a, Err: forbidden}, &deploy.ObjectError{ID: b, Err: forbidden})), []deploy.ObjectID{a, b}, false},
		{fmt.Errorf("removing: %w", errors.Join(&deploy.ObjectError{ID: a, Err: forbidden}, fmt.Errorf("reading inventory: %w", forbidden))), []deploy.ObjectID{a}, true},
		{forbidden, nil, true},
	} {
		ids, unnamed := failedObjects(tc.err)
		if !slices.Equal(ids, tc.ids) || unnamed != tc.unnamed {
			t.Errorf("failedObjects(%v) = %v, %v; want %v, %v", tc.err, ids, unnamed, tc.ids, tc.unnamed)
		}
	}
}

// An uninstall's prune that kept members: those that ask to stay let the
// Installation go, with a warning naming them; any other holds it.
func TestKeptAtUninstall(t *testing.T) {
	rec := events.NewFakeRecorder(10)
	r := &InstallationReconciler{Recorder: rec}
	inst := newInstallation("shop", "web", "hello-web", "1.0", "")
	asked := deploy.Change{Object: deploy.ObjectID{Kind: "ConfigMap", Namespace: "shop", Name: "keep"}, Action: deploy.Kept, Message: deploy.KeptAsAsked}
	pruned := deploy.Change{Object: deploy.ObjectID{Kind: "ConfigMap", Namespace: "shop", Name: "gone"}, Action: deploy.Pruned}
	beside := deploy.Change{Object: deploy.ObjectID{Kind: "Namespace", Name: "extra"}, Action: deploy.Kept, Message: "holds objects kix does not own, such as ConfigMap/extra/x"}

	if err := r.keptAtUninstall(inst, &deploy.ChangeSet{Changes: []deploy.Change{asked, pruned}}); err != nil {
		t.Errorf("members kept as they ask: %v", err)
	}
	select {
	case e := <-rec.Events:
		if !strings.Contains(e, "ConfigMap/shop/keep") {
			t.Errorf("event %q does not name the kept member", e)
		}
	default:
		t.Error("no event names the kept member")
	}

	err := r.keptAtUninstall(inst, &deploy.ChangeSet{Changes: []deploy.Change{asked, beside}})
	var kept *keptError
	if !errors.As(err, &kept) || !strings.Contains(err.Error(), "Namespace/extra: holds objects kix does not own") {
		t.Fatalf("a member kept for what is beside it: %v", err)
	}
	if ids, unnamed := failedObjects(err); unnamed || len(ids) != 1 || ids[0] != beside.Object {
		t.Errorf("failedObjects = %v, %v; want the kept Namespace", ids, unnamed)
	}
}
