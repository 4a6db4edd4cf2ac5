package deploy

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// FieldManager is the server-side apply field manager kix applies with.
const FieldManager = "kix"

// DefaultWorkers bounds the requests a Manager makes at once.
const DefaultWorkers = 64

// Manager applies, diffs, waits for and prunes sets of objects on one
// cluster.
type Manager struct {
	client  dynamic.Interface
	meta    metadata.Interface // metadata only: what existence and up-to-date checks and applies read
	quiet   dynamic.Interface  // for reads whose deprecation warnings are not the user's concern
	disco   discovery.CachedDiscoveryInterface
	mapper  meta.ResettableRESTMapper
	workers int

	lookup       sync.RWMutex               // held to read mapper, and exclusively to reset it
	rediscovered sets.Set[schema.GroupKind] // unknown kinds discovered again for this plan
}

// NewManager connects to a cluster. It makes at most DefaultWorkers
// requests at once and leaves rate limiting to the server (API priority and
// fairness) rather than client-go's default of five per second.
func NewManager(cfg *rest.Config) (*Manager, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst, cfg.RateLimiter = -1, 0, nil
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	metaClient, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	quietCfg := rest.CopyConfig(cfg)
	quietCfg.WarningHandler = rest.NoWarnings{}
	quiet, err := dynamic.NewForConfig(quietCfg)
	if err != nil {
		return nil, err
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	cached := memory.NewMemCacheClient(disco)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)
	return &Manager{client: client, meta: metaClient, quiet: quiet, disco: cached, mapper: mapper, workers: DefaultWorkers}, nil
}

// mapping finds the resource of a kind. A kind discovery does not know is
// asked for again after a fresh discovery (a CRD may have just been
// established), once per kind and plan: a set that brings a CRD and many
// objects of it discovers the cluster once more, not once per object.
//
// Lookups share the mapper; a reset excludes them until discovery has been
// read again. Otherwise a lookup that failed on the old discovery while
// another reset it would find the cache stale and reset it once more.
func (m *Manager) mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m.lookup.RLock()
	mp, err := m.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	m.lookup.RUnlock()
	if meta.IsNoMatchError(err) {
		mp, err = m.rediscover(gvk)
	}
	if meta.IsNoMatchError(err) {
		return nil, &NoKindError{GVK: gvk, err: err}
	}
	return mp, err
}

// rediscover asks for an unknown kind again after a fresh discovery, unless
// that was done for its kind already in this plan.
func (m *Manager) rediscover(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m.lookup.Lock()
	defer m.lookup.Unlock()
	gk := gvk.GroupKind()
	if !m.rediscovered.Has(gk) {
		if m.rediscovered == nil {
			m.rediscovered = sets.New[schema.GroupKind]()
		}
		m.rediscovered.Insert(gk)
		m.mapper.Reset()
	}
	return m.mapper.RESTMapping(gk, gvk.Version)
}

// freshDiscovery forgets what discovery said: the next look sees every
// kind the cluster serves now. A Manager lives long in the controller, and
// someone else may have installed a CRD since it last looked.
func (m *Manager) freshDiscovery() {
	m.lookup.Lock()
	defer m.lookup.Unlock()
	m.mapper.Reset()
}

// forgetUnknownKinds starts a plan: each kind discovery does not know is
// worth one more discovery again.
func (m *Manager) forgetUnknownKinds() {
	m.lookup.Lock()
	defer m.lookup.Unlock()
	m.rediscovered = nil
}

// resetMapper forgets what discovery said, after kinds were added, and
// returns the first of kinds (each with its version) that discovery does
// not serve yet, or nil.
func (m *Manager) resetMapper(kinds []schema.GroupVersionKind) (*schema.GroupVersionKind, error) {
	m.lookup.Lock()
	defer m.lookup.Unlock()
	m.rediscovered = nil
	m.mapper.Reset()
	for _, gvk := range kinds {
		_, err := m.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			return &gvk, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// NoKindError is a kind the cluster does not serve.
type NoKindError struct {
	GVK schema.GroupVersionKind
	err error
}

func (e *NoKindError) Error() string {
	return fmt.Sprintf("the cluster has no kind %s in %s", e.GVK.Kind, e.GVK.GroupVersion())
}

func (e *NoKindError) Unwrap() error { return e.err }

// resourceFor returns the client for an object's resource and namespace.
func (m *Manager) resourceFor(obj *unstructured.Unstructured, mp *meta.RESTMapping) dynamic.ResourceInterface {
	if mp.Scope.Name() == meta.RESTScopeNameNamespace {
		return m.client.Resource(mp.Resource).Namespace(obj.GetNamespace())
	}
	return m.client.Resource(mp.Resource)
}

// metaFor returns the metadata client for an object's resource and
// namespace.
func (m *Manager) metaFor(obj *unstructured.Unstructured, mp *meta.RESTMapping) metadata.ResourceInterface {
	if mp.Scope.Name() == meta.RESTScopeNameNamespace {
		return m.meta.Resource(mp.Resource).Namespace(obj.GetNamespace())
	}
	return m.meta.Resource(mp.Resource)
}

// ObjectError is an error about one object; its message starts with the
// object's ID.
type ObjectError struct {
	ID  ObjectID
	Err error
}

func (e *ObjectError) Error() string { return e.ID.String() + ": " + e.Err.Error() }
func (e *ObjectError) Unwrap() error { return e.Err }

// forEach runs fn for each item with at most workers at once and returns
// the errors, by item. Once ctx is done, the items not yet started fail
// with its error. The workers live for the whole run, so the stacks they
// grow in their first request serve the rest.
func forEach[T any](ctx context.Context, workers int, items []T, fn func(context.Context, T) error) []error {
	errs := make([]error, len(items))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(max(workers, 1), len(items)) {
		wg.Go(func() {
			for i := range next {
				if errs[i] = ctx.Err(); errs[i] == nil {
					errs[i] = fn(ctx, items[i])
				}
			}
		})
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}
