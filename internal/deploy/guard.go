package deploy

import (
	"context"
	"errors"
	"slices"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
// counted; nor are events and the namespace's defaults.
func (m *Manager) foreignObjectIn(ctx context.Context, namespace string, inv Inventory) (string, error) {
	lists, err := m.disco.ServerPreferredNamespacedResources()
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return "", err
	}
	var resources []schema.GroupVersionResource
	kinds := map[schema.GroupVersionResource]string{}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if !slices.Contains(r.Verbs, "list") || r.Name == "events" {
				continue
			}
			gvr := gv.WithResource(r.Name)
			resources = append(resources, gvr)
			kinds[gvr] = r.Kind
		}
	}
	var mu sync.Mutex
	var found string
	notOurs := PartOfLabel + "!=" + inv.ID()
	errs := forEach(ctx, m.workers, resources, func(ctx context.Context, gvr schema.GroupVersionResource) error {
		l, err := m.quiet.Resource(gvr).Namespace(namespace).List(ctx, metav1.ListOptions{LabelSelector: notOurs, Limit: 50})
		if err != nil {
			return nil // a resource we may not list cannot be checked; others will be
		}
		for _, o := range l.Items {
			if len(o.GetOwnerReferences()) > 0 || namespaceDefaults[gvr.GroupResource()] == o.GetName() {
				continue
			}
			mu.Lock()
			if found == "" {
				found = kinds[gvr] + "/" + namespace + "/" + o.GetName()
			}
			mu.Unlock()
			return nil
		}
		return nil
	})
	return found, errors.Join(errs...)
}
