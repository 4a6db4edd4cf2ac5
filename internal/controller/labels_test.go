package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kix-project/kix/api/v1alpha1"
)

// An Installation whose name does not fit in a label value (nor, with a
// prefix, in an inventory's name) works as any other: its objects lead back
// to it (a hand edit is reverted without a resync), a new version prunes,
// and deleting it removes its objects and its own blocks, and no block of
// another Installation whose name shares the label value.
func TestInstallationWithALongName(t *testing.T) {
	cl, _ := startController(t, func(o *Options) { o.Resync = time.Hour })
	publishCatalog(t)
	ns := installNamespace(t, cl)
	ctx := context.Background()
	name := "an-installation-whose-name-is-" + strings.Repeat("long", 55) + "e.x" // 253 characters: the most a name has
	inst := newInstallation(ns, name, "hello-web", "1.0", `{"greeting":"Hi, long name"}`)
	if err := cl.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	inst = waitReady(t, ns, name, metav1.ConditionTrue, ReasonApplied)
	if cm, err := configMap(t, ns, "greeting"); err != nil || cm.Data["greeting"] != "Hi, long name" {
		t.Fatalf("greeting: %v %v", cm.Data, err)
	}
	first := tenantBlocks(t, ns, name)
	if len(first) != 1 || first[0] != inst.Status.BuildingBlock {
		t.Fatalf("tenant blocks %v, applied %s", first, inst.Status.BuildingBlock)
	}

	// Another Installation's block carrying the same labels.
	direct := newClient(t)
	var own v1alpha1.BuildingBlock
	if err := direct.Get(ctx, client.ObjectKey{Name: first[0]}, &own); err != nil {
		t.Fatal(err)
	}
	other := &v1alpha1.BuildingBlock{
		ObjectMeta: metav1.ObjectMeta{Name: "other-" + own.Name, Labels: own.Labels},
		Spec:       own.Spec,
	}
	other.Spec.Owner = &v1alpha1.BlockOwner{Namespace: ns, Installation: name + "-other"}
	if err := direct.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = direct.Delete(context.Background(), other) })

	update(t, direct, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "greeting"}}, func(cm *corev1.ConfigMap) {
		cm.Data["greeting"] = "edited by hand"
	})
	waitConfigMap(t, ns, "greeting", "reverted", func(cm *corev1.ConfigMap, err error) bool {
		return err == nil && cm.Data["greeting"] == "Hi, long name"
	})

	update(t, cl, inst, func(i *v1alpha1.Installation) { i.Spec.Version = "2.0" })
	inst = waitReady(t, ns, name, metav1.ConditionTrue, ReasonApplied)
	if _, err := configMap(t, ns, "legacy"); !apierrors.IsNotFound(err) {
		t.Errorf("legacy after the upgrade: %v", err)
	}
	if blocks := tenantBlocks(t, ns, name); len(blocks) != 1 || blocks[0] != inst.Status.BuildingBlock {
		t.Errorf("tenant blocks after the upgrade %v, applied %s", blocks, inst.Status.BuildingBlock)
	}

	if err := cl.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the Installation gone", func() (bool, string) {
		err := cl.Get(ctx, client.ObjectKeyFromObject(inst), &v1alpha1.Installation{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if _, err := configMap(t, ns, "greeting"); !apierrors.IsNotFound(err) {
		t.Errorf("greeting after the delete: %v", err)
	}
	if blocks := tenantBlocks(t, ns, name); len(blocks) != 0 {
		t.Errorf("tenant blocks after the delete: %v", blocks)
	}
	if err := direct.Get(ctx, client.ObjectKeyFromObject(other), other); err != nil {
		t.Errorf("the other Installation's block: %v", err)
	}
}

// An Installation's name, however long, gives a valid label value and
// inventory name; a name that fits is kept as it is, and two long names
// that differ give two values.
func TestInstallationNamesFit(t *testing.T) {
	long := strings.Repeat("a.", 126) + "a" // 253 characters, dots where the cut falls
	for _, name := range []string{"web", strings.Repeat("a", 63), strings.Repeat("a", 64), long, long[:252] + "b"} {
		value, inv := labelValue(name), inventoryName(newInstallation("ns", name, "", "", ""))
		if errs := validation.IsValidLabelValue(value); errs != nil {
			t.Errorf("labelValue(%s) = %q: %v", name, value, errs)
		}
		if errs := validation.IsDNS1123Subdomain(inv); errs != nil {
			t.Errorf("inventoryName(%s) = %q: %v", name, inv, errs)
		}
		if len(name) <= validation.LabelValueMaxLength && value != name {
			t.Errorf("labelValue(%s) = %q, want the name", name, value)
		}
	}
	if labelValue(long) == labelValue(long[:252]+"b") {
		t.Errorf("two long names share %q", labelValue(long))
	}
	// A tenant's block of a published block whose name is already as long
	// as a name may be.
	inst := newInstallation("ns", "web", "", "", `{"a":1}`)
	if own := tenantBlockName(inst, long); validation.IsDNS1123Subdomain(own) != nil || own == tenantBlockName(newInstallation("ns", "other", "", "", `{"a":1}`), long) {
		t.Errorf("tenantBlockName of a 253-character block = %q", own)
	}
}
