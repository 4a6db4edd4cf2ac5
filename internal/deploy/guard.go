package deploy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
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
// count as the Service's set's.) A resource that cannot be listed, or an
// API group that cannot be discovered, keeps the namespace: kix cannot tell
// what it holds.
func (m *Manager) foreignObjectIn(ctx context.Context, namespace string, inv Inventory, parentGoes bool) (string, error) {
	// Every kind the cluster has now, not the ones it had when this
	// Manager last looked.
	m.freshDiscovery()
	lists, err := m.disco.ServerPreferredNamespacedResources()
	failed, err := discoveryFailures(err)
	if err != nil {
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
	if len(failed) > 0 {
		// The namespace controller could not delete it either: it waits
		// until every group can be discovered.
		unlisted = firstFailure(failed)
	}
	errs := forEach(ctx, m.workers, resources, func(ctx context.Context, r resource) error {
		f, err := m.foreignResource(ctx, r.gvr, r.kind, namespace, inv, parentGoes, goesWithOwner)
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

// discoveryFailures splits a discovery error into the group-versions that
// could not be discovered (an aggregated API that is down, say) and any
// other error.
func discoveryFailures(err error) (map[schema.GroupVersion]error, error) {
	var failed *discovery.ErrGroupDiscoveryFailed
	if errors.As(err, &failed) {
		return failed.Groups, nil
	}
	return nil, err
}

// firstFailure says which group-version could not be discovered, and why;
// the first by name, so the message is the same every time.
func firstFailure(failed map[schema.GroupVersion]error) string {
	gvs := slices.SortedFunc(maps.Keys(failed), func(a, b schema.GroupVersion) int { return strings.Compare(a.String(), b.String()) })
	return discoveryFailure(gvs[0], failed[gvs[0]])
}

func discoveryFailure(gv schema.GroupVersion, err error) string {
	return "discovering " + gv.String() + ": " + err.Error()
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

// ownerRule says whether an object that is not the inventory's, and has
// owners, goes with them (so does not count as foreign).
type ownerRule func(ctx context.Context, o metav1.Object) (bool, error)

// goesWithOwner is a namespace's rule: an owned object goes with its
// owner, which is in the namespace too (and counts itself) or is
// cluster-scoped.
func goesWithOwner(context.Context, metav1.Object) (bool, error) { return true, nil }

// foreignResource returns an object of one resource, in namespace (all
// namespaces if ""), that is not the inventory's and that owned says does
// not go with its owners ("Kind/ns/name"), or "" if there is none; the
// namespace defaults and, if parentGoes, the inventory's parent do not
// count. A resource that is gone or cannot be listed at all holds nothing.
func (m *Manager) foreignResource(ctx context.Context, gvr schema.GroupVersionResource, kind, namespace string, inv Inventory, parentGoes bool, owned ownerRule) (string, error) {
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
			if namespaceDefaults[gr] == o.GetName() || (parentGoes && isParent) {
				continue
			}
			if len(o.GetOwnerReferences()) > 0 {
				goes, err := owned(ctx, &o)
				if err != nil {
					return "", err
				}
				if goes {
					continue
				}
			}
			return ObjectID{Group: gvr.Group, Kind: kind, Namespace: o.GetNamespace(), Name: o.GetName()}.String(), nil
		}
		if opts.Continue = l.GetContinue(); opts.Continue == "" {
			return "", nil
		}
	}
}

// ownedByMember is a CRD's rule: deleting a CRD deletes every custom
// resource of it, whatever owns them, so an owned one goes only if an owner
// is a member of inv (or, a few levels up, goes with one), or every owner
// is gone already (the garbage collector takes it anyway).
func (m *Manager) ownedByMember(inv Inventory) ownerRule {
	return func(ctx context.Context, o metav1.Object) (bool, error) {
		return m.goesWithMember(ctx, inv, o, 4)
	}
}

// goesWithMember reports whether o goes with a member of inv: an owner is
// one, or goes with one (looking up to levels further), or every owner is
// gone.
func (m *Manager) goesWithMember(ctx context.Context, inv Inventory, o metav1.Object, levels int) (bool, error) {
	gone := 0
	for _, ref := range o.GetOwnerReferences() {
		owner, err := m.owner(ctx, ref, o.GetNamespace())
		switch {
		case err != nil:
			return false, err
		case owner == nil:
			gone++
		case owner.GetLabels()[PartOfLabel] == inv.ID():
			return true, nil
		case levels > 0 && len(owner.GetOwnerReferences()) > 0:
			if goes, err := m.goesWithMember(ctx, inv, owner, levels-1); goes || err != nil {
				return goes, err
			}
		}
	}
	return gone == len(o.GetOwnerReferences()), nil
}

// owner reads the metadata of the object an owner reference names, from
// namespace if it is namespaced; nil if it is gone (or is another object
// of the same name now).
func (m *Manager) owner(ctx context.Context, ref metav1.OwnerReference, namespace string) (metav1.Object, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, nil
	}
	mp, err := m.mapper.RESTMapping(gv.WithKind(ref.Kind).GroupKind(), gv.Version)
	if meta.IsNoMatchError(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if mp.Scope.Name() != meta.RESTScopeNameNamespace {
		namespace = ""
	}
	o, err := m.meta.Resource(mp.Resource).Namespace(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && o.GetUID() != ref.UID) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s %s, owner of a custom resource: %w", ref.Kind, ref.Name, err)
	}
	return o, nil
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
	gk := definedKind(obj)
	resource, _, _ := unstructured.NestedString(obj.Object, "spec", "names", "plural")
	return &liveCRD{groupKind: gk, resource: schema.GroupVersionResource{Group: gk.Group, Version: servedVersion(obj), Resource: resource}}, nil
}
