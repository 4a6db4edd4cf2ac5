package deploy

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// item is one desired object, ready to apply.
type item struct {
	id       ObjectID
	obj      *unstructured.Unstructured // with namespace, labels and checksum set
	patch    []byte                     // obj as JSON: what an apply sends
	sum      string
	stage    Stage
	mapping  *meta.RESTMapping // nil until its CRD (in the same set) is established
	deferred bool
}

// plan is a desired set, sorted by stage and ID.
type plan struct {
	items []*item
	sums  map[ObjectID]string
}

func (p *plan) stage(s Stage) []*item {
	var out []*item
	for _, it := range p.items {
		if it.stage == s {
			out = append(out, it)
		}
	}
	return out
}

func (p *plan) ids() map[ObjectID]bool {
	ids := make(map[ObjectID]bool, len(p.items))
	for _, it := range p.items {
		ids[it.id] = true
	}
	return ids
}

func (p *plan) groupKinds() map[schema.GroupKind]bool {
	gks := map[schema.GroupKind]bool{}
	for _, it := range p.items {
		gks[it.id.GroupKind()] = true
	}
	return gks
}

// namespaceObjects are the names of the set's own Namespaces.
func (p *plan) namespaceObjects() map[string]bool {
	ns := map[string]bool{}
	for _, it := range p.items {
		if it.id.Group == "" && it.id.Kind == "Namespace" {
			ns[it.id.Name] = true
		}
	}
	return ns
}

func (p *plan) namespaces() map[string]bool {
	ns := map[string]bool{}
	for _, it := range p.items {
		if it.id.Namespace != "" {
			ns[it.id.Namespace] = true
		}
	}
	return ns
}

// makePlan checks every object and prepares it: namespaced objects get the
// default namespace, cluster-scoped ones lose a namespace they should not
// have, members get the inventory label, and everything gets its checksum.
// All problems are reported at once, before anything is applied.
// planScope is the namespace namespaced objects get if they name none;
// with enforce, they may name no other.
type planScope struct {
	namespace string
	enforce   bool
}

func (m *Manager) makePlan(objs []*unstructured.Unstructured, scope planScope, inv *Inventory, labels map[string]string) (*plan, error) {
	m.forgetUnknownKinds()
	crds := setCRDs(objs)
	p := &plan{sums: map[ObjectID]string{}}
	prepared, prepareErrs, err := m.prepareAll(objs, scope, inv, labels, crds)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i, it := range prepared {
		if err := prepareErrs[i]; err != nil {
			errs = append(errs, err)
			continue
		}
		if inv != nil && it.id == (ObjectID{Kind: "ConfigMap", Namespace: inv.Namespace, Name: inv.Name}) {
			errs = append(errs, &ObjectError{ID: it.id, Err: fmt.Errorf("has the name of %s's own ConfigMap; rename one of them", inv)})
			continue
		}
		if _, dup := p.sums[it.id]; dup {
			errs = append(errs, &ObjectError{ID: it.id, Err: errors.New("appears twice in the set")})
			continue
		}
		p.sums[it.id] = it.sum
		p.items = append(p.items, it)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortFunc(p.items, func(a, b *item) int {
		if a.stage != b.stage {
			return int(a.stage) - int(b.stage)
		}
		return compareIDs(a.id, b.id)
	})
	return p, nil
}

// prepareAll prepares objs in parallel (copying, checksumming and encoding
// each is the client's work of an apply, shared between the cores while the
// server still waits) and returns each one's item or error. An error about
// no one object (the cluster's kinds cannot be read) is returned alone and
// stops the rest: it would be the same for every object.
func (m *Manager) prepareAll(objs []*unstructured.Unstructured, scope planScope, inv *Inventory, labels map[string]string, crds map[schema.GroupKind]setCRD) ([]*item, []error, error) {
	items := make([]*item, len(objs))
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var fatal error
	var once sync.Once
	errs := forEach(ctx, runtime.GOMAXPROCS(0), objIndexes(objs), func(_ context.Context, i int) error {
		var err error
		items[i], err = m.prepare(objs[i], scope, inv, labels, crds)
		if err != nil && !errors.As(err, new(*ObjectError)) {
			once.Do(func() { fatal = err; stop() })
		}
		return err
	})
	return items, errs, fatal
}

func (m *Manager) prepare(o *unstructured.Unstructured, ns planScope, inv *Inventory, extra map[string]string, crds map[schema.GroupKind]setCRD) (*item, error) {
	obj := o.DeepCopy()
	if len(extra) > 0 {
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		for k, v := range extra {
			labels[k] = v
		}
		obj.SetLabels(labels)
	}
	gvk := obj.GroupVersionKind()
	namespaced, deferred := false, false
	// A kind the set's own CRD defines is asked for after a fresh
	// discovery too: the CRD may exist already, created since this
	// Manager's discovery, and its objects must then be read up front.
	mp, err := m.mapping(gvk)
	crd, ownCRD := crds[gvk.GroupKind()]
	switch {
	case err == nil && m.kindOf(mp) != gvk.Kind:
		return nil, &ObjectError{ID: IDOf(obj), Err: fmt.Errorf("kind %q is spelled %q", gvk.Kind, m.kindOf(mp))}
	case err == nil:
		namespaced = mp.Scope.Name() == meta.RESTScopeNameNamespace
	case ownCRD && errors.As(err, new(*NoKindError)) && !slices.Contains(crd.served, gvk.Version):
		served := strings.Join(crd.served, ", ")
		if served == "" {
			served = "no version"
		}
		return nil, &ObjectError{ID: IDOf(obj), Err: fmt.Errorf("its CustomResourceDefinition in this set serves %s, not %s", served, gvk.Version)}
	case ownCRD && errors.As(err, new(*NoKindError)):
		namespaced, deferred = crd.namespaced, true
	case errors.As(err, new(*NoKindError)):
		return nil, &ObjectError{ID: IDOf(obj), Err: err}
	default:
		// Not about this object: the cluster's kinds could not be read.
		return nil, fmt.Errorf("reading the kinds the cluster serves: %w", err)
	}
	if namespaced && ns.enforce && obj.GetNamespace() != "" && obj.GetNamespace() != ns.namespace {
		return nil, &ObjectError{ID: IDOf(obj), Err: fmt.Errorf("names namespace %q, but --namespace is %q; leave -n out or make them agree", obj.GetNamespace(), ns.namespace)}
	}
	if namespaced && obj.GetNamespace() == "" {
		obj.SetNamespace(ns.namespace)
	}
	if !namespaced {
		obj.SetNamespace("")
	}
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	if inv != nil {
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[PartOfLabel] = inv.ID()
		obj.SetLabels(labels)
		ann[InventoryAnnotation] = inv.Namespace + "/" + inv.Name
	}
	// The checksum covers all kix sends but itself, the set's label and
	// annotation too: an object is up to date only in the set it belongs
	// to, so adopting one whose content did not change still moves it.
	delete(ann, ChecksumAnnotation)
	obj.SetAnnotations(ann)
	sum, err := checksum(obj)
	if err != nil {
		return nil, &ObjectError{ID: IDOf(obj), Err: err}
	}
	ann[ChecksumAnnotation] = sum
	obj.SetAnnotations(ann)
	id := IDOf(obj)
	patch, err := obj.MarshalJSON()
	if err != nil {
		return nil, &ObjectError{ID: id, Err: err}
	}
	return &item{id: id, obj: obj, patch: patch, sum: sum, stage: stageOf(id, namespaced), mapping: mp, deferred: deferred}, nil
}

// objIndexes are 0, 1, ... len(objs)-1.
func objIndexes(objs []*unstructured.Unstructured) []int {
	out := make([]int, len(objs))
	for i := range out {
		out[i] = i
	}
	return out
}

// setCRD is what one of the set's own CRDs says of its kind.
type setCRD struct {
	namespaced bool
	served     []string // the versions it serves
}

// setCRDs maps the group-kinds the set's own CRDs define to what they say.
func setCRDs(objs []*unstructured.Unstructured) map[schema.GroupKind]setCRD {
	crds := map[schema.GroupKind]setCRD{}
	for _, o := range objs {
		if o.GroupVersionKind().GroupKind() != crdGroupKind {
			continue
		}
		scope, _, _ := unstructured.NestedString(o.Object, "spec", "scope")
		c := setCRD{namespaced: scope == "Namespaced"}
		versions, _, _ := unstructured.NestedSlice(o.Object, "spec", "versions")
		for _, v := range versions {
			if v, ok := v.(map[string]any); ok && v["served"] == true {
				if name, ok := v["name"].(string); ok {
					c.served = append(c.served, name)
				}
			}
		}
		crds[definedKind(o)] = c
	}
	return crds
}

// definedKind is the group-kind a CustomResourceDefinition defines.
func definedKind(crd *unstructured.Unstructured) schema.GroupKind {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
	return schema.GroupKind{Group: group, Kind: kind}
}

// servedVersion is the version of a CustomResourceDefinition kix reads
// and writes: the storage version if it is served, else the first served
// one ("" if none is).
func servedVersion(crd *unstructured.Unstructured) string {
	var version string
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		if v, ok := v.(map[string]any); ok && v["served"] == true && (version == "" || v["storage"] == true) {
			version, _ = v["name"].(string)
		}
	}
	return version
}

// resolve maps items whose CRD has since been established.
func (m *Manager) resolve(items []*item) error {
	var errs []error
	for _, it := range items {
		if it.mapping != nil {
			continue
		}
		mp, err := m.mapping(it.obj.GroupVersionKind())
		if err != nil {
			errs = append(errs, &ObjectError{ID: it.id, Err: fmt.Errorf("its CustomResourceDefinition is in the set but: %w", err)})
			continue
		}
		it.mapping = mp
	}
	return errors.Join(errs...)
}

// kindOf is the kind of a mapping's resource as the API spells it:
// discovery also maps the lower-case kind, which the API refuses.
func (m *Manager) kindOf(mp *meta.RESTMapping) string {
	m.lookup.RLock()
	defer m.lookup.RUnlock()
	gvk, err := m.mapper.KindFor(mp.Resource)
	if err != nil {
		return mp.GroupVersionKind.Kind
	}
	return gvk.Kind
}
