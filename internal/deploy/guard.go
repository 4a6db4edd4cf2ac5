package deploy

import (
	"context"
	"errors"
	"slices"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// Objects every namespace has without anyone asking, which do not make a
// namespace someone else's.
var namespaceDefaults = map[schema.GroupResource]string{
	{Resource: "serviceaccounts"}: "default",
	{Resource: "configmaps"}:      "kube-root-ca.crt",
}

// foreignObjectIn returns an object in a namespace that kix would delete
// along with the namespace without owning it ("ConfigMap/ns/name"), or ""
// if there is none. Objects with an owner go with their owner and are not
// counted; nor are events and the namespace's defaults, nor, if
// parentGoes, the inventory's parent. (A Service's Endpoints have no owner
// but carry the Service's labels, so they count as the Service's set's.)
func (m *Manager) foreignObjectIn(ctx context.Context, namespace string, inv Inventory, parentGoes bool) (string, error) {
	lists, err := m.disco.ServerPreferredNamespacedResources()
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return "", err
	}
	type resource struct {
		gvr  schema.GroupVersionResource
		kind string
	}
	var resources []resource
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if slices.Contains(r.Verbs, "list") && r.Name != "events" {
				resources = append(resources, resource{gv.WithResource(r.Name), r.Kind})
			}
		}
	}
	var mu sync.Mutex
	var found string
	errs := forEach(ctx, m.workers, resources, func(ctx context.Context, r resource) error {
		f, err := m.foreignResource(ctx, r.gvr, r.kind, namespace, inv, parentGoes)
		if err != nil {
			return nil // a resource we may not list cannot be checked; others will be
		}
		mu.Lock()
		defer mu.Unlock()
		if found == "" {
			found = f
		}
		return nil
	})
	return found, errors.Join(errs...)
}

// foreignResource returns an object of one resource, in namespace (all
// namespaces if ""), that is not the inventory's and has no owner
// ("Kind/ns/name"), or "" if there is none; the namespace defaults and, if
// parentGoes, the inventory's parent do not count.
func (m *Manager) foreignResource(ctx context.Context, gvr schema.GroupVersionResource, kind, namespace string, inv Inventory, parentGoes bool) (string, error) {
	l, err := m.quiet.Resource(gvr).Namespace(namespace).List(ctx, metav1.ListOptions{LabelSelector: PartOfLabel + "!=" + inv.ID(), Limit: 50})
	if err != nil {
		return "", err
	}
	for _, o := range l.Items {
		gr := gvr.GroupResource()
		isParent := gr == parentGVR.GroupResource() && o.GetNamespace() == inv.Namespace && o.GetName() == inv.Name
		if len(o.GetOwnerReferences()) > 0 || namespaceDefaults[gr] == o.GetName() || (parentGoes && isParent) {
			continue
		}
		return ObjectID{Group: gvr.Group, Kind: kind, Namespace: o.GetNamespace(), Name: o.GetName()}.String(), nil
	}
	return "", nil
}

// liveCRD is what a prune needs of a CustomResourceDefinition.
type liveCRD struct {
	groupKind schema.GroupKind
	resource  schema.GroupVersionResource // at the storage version
}

// readCRD reads a CustomResourceDefinition on the cluster.
func (m *Manager) readCRD(ctx context.Context, name string) (*liveCRD, error) {
	obj, err := m.client.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	group, _, _ := unstructured.NestedString(obj.Object, "spec", "group")
	kind, _, _ := unstructured.NestedString(obj.Object, "spec", "names", "kind")
	resource, _, _ := unstructured.NestedString(obj.Object, "spec", "names", "plural")
	crd := &liveCRD{groupKind: schema.GroupKind{Group: group, Kind: kind}, resource: schema.GroupVersionResource{Group: group, Resource: resource}}
	versions, _, _ := unstructured.NestedSlice(obj.Object, "spec", "versions")
	for _, v := range versions {
		if v, ok := v.(map[string]any); ok && v["storage"] == true {
			crd.resource.Version, _ = v["name"].(string)
		}
	}
	return crd, nil
}
