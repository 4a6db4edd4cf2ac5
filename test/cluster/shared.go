package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/kix-project/kix/test/testenv"
)

// Shared is one cluster for all tests of a package, started by the first
// test that asks for it and stopped by TestMain after the last.
type Shared struct {
	opts    Options
	once    sync.Once
	cluster *Cluster
	err     error
}

// NewShared prepares a package's cluster; nothing starts until Get.
func NewShared(opts Options) *Shared { return &Shared{opts: opts} }

// Run runs the package's tests and then stops the cluster, if one started.
// A failure to stop cleanly fails the run.
func (s *Shared) Run(m *testing.M) int {
	code := m.Run()
	if s.cluster != nil {
		if err := s.cluster.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping test cluster: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Get returns the package's cluster, starting it on first use. If a binary
// it needs is missing the test is skipped (failed under CI); if it fails to
// start, every test that asks for it fails with the reason.
func (s *Shared) Get(t testing.TB) *Cluster {
	t.Helper()
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		s.cluster, s.err = Start(ctx, s.opts)
	})
	var missing *MissingToolError
	if errors.As(s.err, &missing) {
		testenv.Missing(t, missing.Error())
	}
	if s.err != nil {
		t.Fatalf("starting test cluster: %v", s.err)
	}
	return s.cluster
}

var unsafeName = regexp.MustCompile(`[^a-z0-9-]+`)

// Namespace creates a namespace for one test, named after it, and deletes it
// when the test ends. With a node, it waits until the namespace's default
// ServiceAccount exists, so pods can be created right away.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	base := strings.Trim(unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 40 {
		base = strings.TrimRight(base[:40], "-")
	}
	name := base + "-" + rand.String(5)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := c.client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting namespace %s: %v", name, err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return name
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s: no default ServiceAccount after 30s: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
