package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kix-project/kix/test/cluster"
)

// poll calls cond every 200ms until it holds or timeout passes, and
// returns whether it held and the last state it reported. It keeps no
// test context: cleanups wait too, after t.Context() is cancelled.
func poll(timeout time.Duration, cond func() (bool, string)) (bool, string) {
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok || time.Now().After(deadline) {
			return ok, state
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitState waits until cond holds, failing with the last state it
// reported after the timeout.
func waitState(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	if ok, state := poll(timeout, cond); !ok {
		t.Fatalf("timed out after %s waiting for %s (last: %s)", timeout, what, state)
	}
}

// waitUntil waits until ok holds, for a condition with no state to report.
func waitUntil(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	if held, _ := poll(timeout, func() (bool, string) { return ok(), "" }); !held {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// waitForPod waits until a pod reaches phase want, failing with the
// namespace's events if it fails first or takes over two minutes.
func waitForPod(t *testing.T, c *cluster.Cluster, ns, name string, want corev1.PodPhase) {
	t.Helper()
	_, phase := poll(2*time.Minute, func() (bool, string) {
		pod, err := c.Client().CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return pod.Status.Phase == want || pod.Status.Phase == corev1.PodFailed, string(pod.Status.Phase)
	})
	if phase != string(want) {
		t.Fatalf("pod %s/%s is %s, want %s\nevents:\n%s", ns, name, phase, want, events(c, ns))
	}
}

// events lists a namespace's events, one "reason: message" a line.
func events(c *cluster.Cluster, ns string) string {
	list, err := c.Client().CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return fmt.Sprintf("listing events: %v", err)
	}
	var msgs []string
	for _, e := range list.Items {
		msgs = append(msgs, e.Reason+": "+e.Message)
	}
	return strings.Join(msgs, "\n")
}
