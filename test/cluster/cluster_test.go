package cluster

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kix-project/kix/test/fixture"
)

var kube = NewShared(Options{Node: true})

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	os.Exit(kube.Run(m))
}

// The smoke test: the fixture hello, built by Nix, runs in a pod on the
// harness's kubelet, and its output comes back through the API server.
func TestHelloPodLogs(t *testing.T) {
	c := kube.Get(t)
	ns := c.Namespace(t)
	ctx := t.Context()

	hello := fixture.Build(t, "hello")
	img, err := fixture.ClosureImage(fixture.Closure(t, hello), []string{hello + "/bin/hello"})
	if err != nil {
		t.Fatal(err)
	}
	ref := "kix.local/hello:" + strings.TrimPrefix(hello, "/nix/store/")[:32]
	if err := c.ImportImage(ctx, ref, img); err != nil {
		t.Fatal(err)
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name:            "hello",
				Image:           ref,
				ImagePullPolicy: corev1.PullNever,
			}},
		},
	}
	if _, err := c.Client().CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForPodPhase(t, c, ns, "hello", corev1.PodSucceeded)

	logs, err := c.Client().CoreV1().Pods(ns).GetLogs("hello", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(logs), "Hello, world!\n"; got != want {
		t.Errorf("pod logs = %q, want %q", got, want)
	}
}

func waitForPodPhase(t *testing.T, c *Cluster, ns, name string, want corev1.PodPhase) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		pod, err := c.Client().CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pod.Status.Phase == want {
			return
		}
		if pod.Status.Phase == corev1.PodFailed || time.Now().After(deadline) {
			t.Fatalf("pod %s/%s is %s, want %s; status: %+v", ns, name, pod.Status.Phase, want, pod.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestNamespacePerTest(t *testing.T) {
	c := kube.Get(t)
	a, b := c.Namespace(t), c.Namespace(t)
	if a == b {
		t.Fatalf("two namespaces for one test share the name %s", a)
	}
	if !strings.HasPrefix(a, "testnamespacepertest-") {
		t.Errorf("namespace %q is not named after the test", a)
	}
	for _, ns := range []string{a, b} {
		if _, err := c.Client().CoreV1().ServiceAccounts(ns).Get(t.Context(), "default", metav1.GetOptions{}); err != nil {
			t.Errorf("namespace %s has no default ServiceAccount: %v", ns, err)
		}
	}
}

func TestServerVersionIsPinnedRelease(t *testing.T) {
	c := kube.Get(t)
	v, err := c.Client().Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != KubeVersion {
		t.Errorf("API server reports %s, want %s", v.GitVersion, KubeVersion)
	}
}

func TestKubeVersionMatchesToolsModule(t *testing.T) {
	data, err := os.ReadFile(fixture.Root() + "/hack/tools/kubernetes/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if want := "require k8s.io/kubernetes " + KubeVersion + "\n"; !strings.Contains(string(data), want) {
		t.Errorf("hack/tools/kubernetes/go.mod does not contain %q", want)
	}
}

// startCtx bounds a harness start in tests.
func startCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
