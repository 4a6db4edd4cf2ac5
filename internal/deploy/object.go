package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ObjectID names an object: group, kind, namespace and name.
type ObjectID struct {
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// IDOf returns an object's ID.
func IDOf(obj *unstructured.Unstructured) ObjectID {
	return ObjectID{
		Group:     obj.GroupVersionKind().Group,
		Kind:      obj.GetKind(),
		Namespace: obj.GetNamespace(),
		Name:      obj.GetName(),
	}
}

// String is "Kind/namespace/name", or "Kind/name" for cluster-scoped
// objects; every error about an object starts with it.
func (id ObjectID) String() string {
	if id.Namespace == "" {
		return id.Kind + "/" + id.Name
	}
	return id.Kind + "/" + id.Namespace + "/" + id.Name
}

// CustomResourceDefinitions, which kix applies first and prunes last.
var (
	crdGroupKind = schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}
	crdGVR       = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// GroupKind returns the object's group and kind.
func (id ObjectID) GroupKind() schema.GroupKind {
	return schema.GroupKind{Group: id.Group, Kind: id.Kind}
}

func compareIDs(a, b ObjectID) int {
	for _, c := range [][2]string{{a.Group, b.Group}, {a.Kind, b.Kind}, {a.Namespace, b.Namespace}, {a.Name, b.Name}} {
		if c := strings.Compare(c[0], c[1]); c != 0 {
			return c
		}
	}
	return 0
}

// Stage is a step of an apply. Objects of one stage are applied together,
// in parallel; a stage starts when the previous one is done.
type Stage int

// The stages, in the order they are applied (and pruned in reverse).
const (
	// StageNamespaces: Namespaces, so namespaced objects have a home. They
	// come first so that an inventory whose parent lives in a Namespace of
	// the set can record the set's kinds before anything else is applied
	// (see intentWriter): an apply stopped after its CRDs leaves no CRD
	// that the parent does not list.
	StageNamespaces Stage = iota
	// StageCRDs: CustomResourceDefinitions, waited for until Established,
	// so the set's own custom resources can follow.
	StageCRDs
	// StageClusterScoped: other cluster-scoped objects (ClusterRoles,
	// StorageClasses, cluster-scoped custom resources).
	StageClusterScoped
	// StageNamespaced: everything namespaced.
	StageNamespaced
	// StageWebhooks: admission webhooks and policies last, so they do not
	// intercept the set's own objects before their services run.
	StageWebhooks
)

var stageNames = []string{"namespaces", "CRDs", "cluster-scoped objects", "namespaced objects", "webhooks"}

func (s Stage) String() string { return stageNames[s] }

// count says how many objects of the stage there are: "1 namespace",
// "3 namespaces".
func (s Stage) count(n int) string {
	if n == 1 {
		return "1 " + strings.TrimSuffix(stageNames[s], "s")
	}
	return fmt.Sprintf("%d %s", n, stageNames[s])
}

// plural says n things: "1 object", "2 objects".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

var webhookKinds = map[schema.GroupKind]bool{
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:     true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}:   true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicy"}:        true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicyBinding"}: true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicy"}:          true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicyBinding"}:   true,
}

// InApplyOrder returns objs in an order a one-pass tool (kubectl apply -f)
// can apply them in: Namespaces, then CRDs, then the rest as they came,
// admission webhooks and policies last. It asks no cluster, so unlike an
// apply it does not tell cluster-scoped objects from namespaced ones.
func InApplyOrder(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	out := slices.Clone(objs)
	slices.SortStableFunc(out, func(a, b *unstructured.Unstructured) int {
		return int(stageOf(IDOf(a), false)) - int(stageOf(IDOf(b), false))
	})
	return out
}

// stageOf returns the stage an object is applied in.
func stageOf(id ObjectID, namespaced bool) Stage {
	gk := id.GroupKind()
	switch {
	case gk == crdGroupKind:
		return StageCRDs
	case gk == schema.GroupKind{Kind: "Namespace"}:
		return StageNamespaces
	case webhookKinds[gk]:
		return StageWebhooks
	case namespaced:
		return StageNamespaced
	}
	return StageClusterScoped
}

// checksum identifies an object's desired content: the SHA-256 of its
// JSON (encoding/json sorts map keys), truncated to 128 bits.
func checksum(obj *unstructured.Unstructured) (string, error) {
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return "", fmt.Errorf("%s: %w", IDOf(obj), err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16]), nil
}

// setChecksum identifies a whole set: the checksum of its objects'
// checksums in ID order, as kubernixos stamps its deployments.
func setChecksum(sums map[ObjectID]string) string {
	ids := make([]ObjectID, 0, len(sums))
	for id := range sums {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareIDs)
	h := sha256.New()
	for _, id := range ids {
		fmt.Fprintf(h, "%s %s\n", id, sums[id])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
