package controller

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/deploy"
	"github.com/kix-project/kix/internal/eval"
	"github.com/kix-project/kix/internal/image"
	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/test/cluster"
	"github.com/kix-project/kix/test/fixture"
)

var kube = cluster.NewShared(cluster.Options{})

func TestMain(m *testing.M) {
	// The tests read what the controller did from the cluster, not its log.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(kube.Run(m))
}

const testRegistry = "registry.test:5000"

var (
	installCRDs sync.Once
	crdsErr     error // what installing them said, for every test after the first
)

// crds applies config/crd, as kix deploys itself, once per test process.
func crds(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	installCRDs.Do(func() {
		var err error
		defer func() { crdsErr = err }()
		var res *eval.Result
		res, err = eval.Evaluate(context.Background(), eval.Options{File: filepath.Join(fixture.Root(), "config", "crd")})
		if err != nil {
			return
		}
		var m *deploy.Manager
		if m, err = deploy.NewManager(c.RESTConfig()); err != nil {
			return
		}
		_, err = m.Apply(context.Background(), res.Objects, deploy.ApplyOptions{})
	})
	if crdsErr != nil {
		t.Fatalf("installing the CRDs: %v", crdsErr)
	}
}

// startController runs the manager until the test ends (or stop is called)
// and returns a client.
func startController(t *testing.T, configure ...func(*Options)) (client.Client, func()) {
	t.Helper()
	c := kube.Get(t)
	crds(t, c)
	cache, err := image.OpenBlobCache(t.TempDir(), image.DefaultCacheBytes)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		MetricsAddr: "0", HealthAddr: "0",
		PackageSet: fixture.Dir(), Registry: testRegistry, MaxBuilds: 2,
		Images: &image.Builder{Store: nix.NewLocalStore(), Cache: cache},
		Resync: 3 * time.Second,
	}
	for _, f := range configure {
		f(&opts)
	}
	mgr, err := NewManager(c.RESTConfig(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return mgr.GetClient(), stop
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not after %s (last: %s)", what, timeout, last)
}

func readyCondition(conds []metav1.Condition) *metav1.Condition {
	return meta.FindStatusCondition(conds, v1alpha1.ConditionReady)
}

// newClient is a plain client of the test cluster (not the manager's cache).
func newClient(t *testing.T) client.Client {
	t.Helper()
	cl, err := client.New(kube.Get(t).RESTConfig(), client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// update changes an object as kubectl edit does: get, change, update, and
// again on a conflict.
func update[T client.Object](t *testing.T, cl client.Client, obj T, change func(T)) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := cl.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		change(obj)
		return cl.Update(ctx, obj)
	})
	if err != nil {
		t.Fatalf("updating %s: %v", obj.GetName(), err)
	}
}
