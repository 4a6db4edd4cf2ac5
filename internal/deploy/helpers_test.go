package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/kix-project/kix/test/cluster"
)

var kube = cluster.NewShared(cluster.Options{})

func TestMain(m *testing.M) { os.Exit(kube.Run(m)) }

// requestCounter counts the requests a Manager makes, by method, and its
// discoveries of the API groups (under "discovery"). With watchGroup set,
// it also counts the discoveries made before the first write of a CRD
// ("discovery before CRDs") and those whose answer lists the group
// ("discovery listing the group").
type requestCounter struct {
	watchGroup string

	mu         sync.Mutex
	counts     map[string]int
	crdWritten bool
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		c.mu.Lock()
		c.counts[r.Method]++
		discovery := r.URL.Path == "/apis"
		if discovery {
			c.counts["discovery"]++
			if !c.crdWritten {
				c.counts["discovery before CRDs"]++
			}
		}
		if r.Method == http.MethodPatch && strings.Contains(r.URL.Path, "/customresourcedefinitions/") {
			c.crdWritten = true
		}
		c.mu.Unlock()
		resp, err := rt.RoundTrip(r)
		if err != nil || !discovery || c.watchGroup == "" {
			return resp, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if bytes.Contains(body, []byte(c.watchGroup)) {
			c.mu.Lock()
			c.counts["discovery listing the group"]++
			c.mu.Unlock()
		}
		return resp, nil
	})
}

func (c *requestCounter) get(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[method]
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// newManager returns a Manager on the package's cluster and a counter of
// its requests.
func newManager(t *testing.T) (*Manager, *requestCounter) {
	t.Helper()
	return newWatchingManager(t, "")
}

// newWatchingManager is newManager with a counter watching for group in
// discovery.
func newWatchingManager(t *testing.T, group string) (*Manager, *requestCounter) {
	t.Helper()
	c := kube.Get(t)
	cfg := c.RESTConfig()
	counter := &requestCounter{watchGroup: group, counts: map[string]int{}}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return counter.wrap(rt) })
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, counter
}

func dyn(t *testing.T) dynamic.Interface {
	t.Helper()
	d, err := dynamic.NewForConfig(kube.Get(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// objects parses YAML documents, with NS replaced by ns.
func objects(t *testing.T, ns, docs string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(strings.ReplaceAll(docs, "NS", ns), "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out
}

// actions summarises a change set as "Kind/ns/name action".
func actions(cs *ChangeSet) []string {
	var out []string
	for _, c := range cs.Changes {
		out = append(out, c.Object.String()+" "+string(c.Action))
	}
	return out
}

func wantActions(t *testing.T, cs *ChangeSet, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, actions(cs)); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}

var (
	configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	namespaces = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	secrets    = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

func exists(t *testing.T, gvr schema.GroupVersionResource, ns, name string) bool {
	t.Helper()
	_, err := dyn(t).Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// ownNamespace is a namespace a test's set creates, deleted after it.
func ownNamespace(t *testing.T, name string) string {
	t.Cleanup(func() {
		_ = dyn(t).Resource(namespaces).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

func apply(t *testing.T, m *Manager, objs []*unstructured.Unstructured, opts ApplyOptions) *ChangeSet {
	t.Helper()
	cs, err := m.Apply(context.Background(), objs, opts)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return cs
}

// schemalessCRD is a set's document: a namespaced CRD of kind in group,
// with any fields, removed from the cluster after the test.
func schemalessCRD(t *testing.T, group, plural, kind string) string {
	t.Cleanup(func() {
		_ = dyn(t).Resource(crdGVR).Delete(context.Background(), plural+"."+group, metav1.DeleteOptions{})
	})
	return fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: %[2]s.%[1]s}
spec:
  group: %[1]s
  scope: Namespaced
  names: {plural: %[2]s, singular: %[3]s, kind: %[4]s}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
`, group, plural, strings.ToLower(kind), kind)
}
