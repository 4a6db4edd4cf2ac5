package deploy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// foreignObjectIn says why deleting a namespace would take objects kix does
// not own ("holds objects kix does not own, such as ConfigMap/ns/name"), or
// "" if it would not. Only resources a namespace's deletion removes are
// looked at (those with the delete verb: not PodMetrics, say). Objects with
// an owner go with their owner and are not counted; nor are events and the
// namespace's defaults, nor, if parentGoes, the inventory's parent. (A
// Service's Endpoints have no owner but carry the Service's labels, so they
// count as the Service's set's.) A resource that cannot be listed keeps the
// namespace: kix cannot tell what it holds.
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
			if slices.Contains(r.Verbs, "list") && slices.Contains(r.Verbs, "delete") && r.Name != "events" {
				resources = append(resources, resource{gv.WithResource(r.Name), r.Kind})
			}
		}
	}
	var mu sync.Mutex
	var found, unlisted string
	errs := forEach(ctx, m.workers, resources, func(ctx context.Context, r resource) error {
		f, err := m.foreignResource(ctx, r.gvr, r.kind, namespace, inv, parentGoes)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil && unlisted == "":
			unlisted = "listing " + r.gvr.GroupResource().String() + ": " + err.Error()
		case f != "" && found == "":
			found = f
		}
		return nil
	})
	return foreignReason("holds", found, unlisted), errors.Join(errs...)
}

// foreignReason says why a Namespace ("holds") or a CRD ("defines") is
// kept: an object kix does not own, found; or a resource it could not
// list, so kix cannot tell. "" if neither.
func foreignReason(verb, found, unlisted string) string {
	switch {
	case found != "":
		return verb + " objects kix does not own, such as " + found
	case unlisted != "":
		return "may " + strings.TrimSuffix(verb, "s") + " objects kix does not own: " + unlisted
	}
	return ""
}

// foreignResource returns an object of one resource, in namespace (all
// namespaces if ""), that is not the inventory's and has no owner
// ("Kind/ns/name"), or "" if there is none; the namespace defaults and, if
// parentGoes, the inventory's parent do not count. A resource that is gone
// or cannot be listed at all holds nothing.
func (m *Manager) foreignResource(ctx context.Context, gvr schema.GroupVersionResource, kind, namespace string, inv Inventory, parentGoes bool) (string, error) {
	opts := metav1.ListOptions{LabelSelector: PartOfLabel + "!=" + inv.ID(), Limit: 100}
	for {
		l, err := m.quiet.Resource(gvr).Namespace(namespace).List(ctx, opts)
		if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
			return "", nil
		}
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
		if opts.Continue = l.GetContinue(); opts.Continue == "" {
			return "", nil
		}
	}
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
	// The storage version if it is served, else the first served one.
	versions, _, _ := unstructured.NestedSlice(obj.Object, "spec", "versions")
	for _, v := range versions {
		if v, ok := v.(map[string]any); ok && v["served"] == true && (crd.resource.Version == "" || v["storage"] == true) {
			crd.resource.Version, _ = v["name"].(string)
		}
	}
	return crd, nil
}
