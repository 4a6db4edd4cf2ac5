package deploy

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestInApplyOrder(t *testing.T) {
	obj := func(apiVersion, kind, name string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": name}}}
	}
	objs := []*unstructured.Unstructured{
		obj("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "hook"),
		obj("v1", "ConfigMap", "b"),
		obj("v1", "Namespace", "shop"),
		obj("v1", "ConfigMap", "a"),
		obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.org"),
		obj("example.org/v1", "Widget", "w"),
	}
	var got []string
	for _, o := range InApplyOrder(objs) {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	want := []string{"Namespace/shop", "CustomResourceDefinition/widgets.example.org", "ConfigMap/b", "ConfigMap/a", "Widget/w", "ValidatingWebhookConfiguration/hook"}
	if !slices.Equal(got, want) {
		t.Errorf("order %q, want %q", got, want)
	}
	if objs[0].GetName() != "hook" {
		t.Error("InApplyOrder reordered its argument")
	}
}
