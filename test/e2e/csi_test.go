package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kix-project/kix/internal/image"
	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/test/cluster"
	"github.com/kix-project/kix/test/fixture"
)

// Seed 001's scene on the harness's kubelet: pods with an empty image run
// hello from a csi.kix.dev volume mounted at /nix, fed by kix cache. Two
// pods share one copy of each path; deleting them unmounts the views and
// garbage collection empties the node's store. Volumes that cannot work
// fail with an event that says why, and leave nothing behind.
func TestCSIPodsMountStorePaths(t *testing.T) {
	c := kube.Get(t)
	ns := c.Namespace(t)
	hello := fixture.Build(t, "hello")
	closure := fixture.Closure(t, hello)
	webserver := fixture.Build(t, "webserver")

	// A folder written by Nix, served by kix cache and signed on the fly
	// with a key made by kix cache keygen: the only key the node trusts.
	keys := t.TempDir()
	public := strings.TrimSpace(runKix(t, "cache", "keygen", "kix-e2e-1", "--out-dir", keys))
	trusted := startKixCache(t, "--dir", fixture.NewBinaryCache(t, "zstd", hello).Dir,
		"--secret-key", filepath.Join(keys, "kix-e2e-1.sec"))
	// A second cache, signed only by a key the node does not trust.
	rogue := startKixCache(t, "--dir", fixture.NewBinaryCache(t, "none", webserver).Dir)

	node := startKixCSI(t, c, "--substituter", trusted, "--substituter", rogue, "--trusted-public-key", public)
	createCSIDriver(t, c, deployObjects(t, trusted, public))
	if err := c.ImportScratch(t.Context()); err != nil {
		t.Fatal(err)
	}
	pods := c.Client().CoreV1().Pods(ns)
	t.Cleanup(func() { deletePodsAndWait(t, c, ns, node) })

	for _, name := range []string{"hello-a", "hello-b"} {
		createPod(t, c, ns, name, []string{hello + "/bin/hello", "--linger"}, map[string]string{image.CurrentSystem(): hello})
	}
	for _, name := range []string{"hello-a", "hello-b"} {
		waitForPod(t, c, ns, name, corev1.PodRunning)
		waitUntil(t, 30*time.Second, name+"'s logs", func() bool {
			logs, err := pods.GetLogs(name, &corev1.PodLogOptions{}).DoRaw(t.Context())
			return err == nil && string(logs) == "Hello, world!\n"
		})
	}

	// One copy: the store holds the closure once, both views link to it.
	var want []string
	for _, p := range closure {
		want = append(want, nix.BaseName(p))
	}
	if got := entries(t, filepath.Join(node.state, "store")); !slices.Equal(got, want) {
		t.Errorf("node store holds %v, want the closure %v once", got, want)
	}
	volumes := entries(t, filepath.Join(node.state, "volumes"))
	if len(volumes) != 2 || len(node.viewMounts(t)) != 2 {
		t.Fatalf("volumes %v, view mounts %v: want one of each per pod", volumes, node.viewMounts(t))
	}
	greeting := ""
	for _, p := range closure {
		if nix.NamePart(p) == "hello-greeting-1.0" {
			greeting = filepath.Join(nix.BaseName(p), "share", "hello", "greeting.txt")
		}
	}
	ino := func(p string) uint64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	shared := ino(filepath.Join(node.state, "store", greeting))
	for _, v := range volumes {
		if got := ino(filepath.Join(node.state, "volumes", v, "nix", "store", greeting)); got != shared {
			t.Errorf("volume %s: greeting.txt is inode %d, the store's is %d", v, got, shared)
		}
	}

	// Deleting the pods unmounts, and garbage collection frees the space.
	deletePodsAndWait(t, c, ns, node)
	waitUntil(t, 60*time.Second, "garbage collection to empty the node's store", func() bool {
		return len(entries(t, filepath.Join(node.state, "store"))) == 0 &&
			len(entries(t, filepath.Join(node.state, "volumes"))) == 0
	})

	t.Run("bad volumes", func(t *testing.T) {
		missing := "/nix/store/00000000000000000000000000000000-missing-1.0"
		bad := []struct {
			name  string
			attrs map[string]string
			event string
		}{
			{"missing", map[string]string{"storePath": missing}, "code = NotFound desc = volume csi-"},
			{"untrusted", map[string]string{"storePath": webserver}, "code = PermissionDenied"},
			{"other-system", map[string]string{"riscv64-linux": hello}, "code = FailedPrecondition desc = volume names store paths for riscv64-linux only"},
			{"malformed", map[string]string{"storePath": "hello"}, "code = InvalidArgument"},
		}
		for _, b := range bad {
			createPod(t, c, ns, b.name, []string{hello + "/bin/hello"}, b.attrs)
		}
		for _, b := range bad {
			msg := waitForEvent(t, c, ns, b.name, "FailedMount")
			if !strings.Contains(msg, b.event) {
				t.Errorf("pod %s: event %q, want it to contain %q", b.name, msg, b.event)
			}
			t.Logf("pod %s: %s", b.name, msg)
			pod, err := pods.Get(t.Context(), b.name, metav1.GetOptions{})
			if err != nil || pod.Status.Phase != corev1.PodPending {
				t.Errorf("pod %s: %v, phase %s, want Pending", b.name, err, pod.Status.Phase)
			}
		}
		if m := node.viewMounts(t); len(m) > 0 {
			t.Errorf("bad volumes mounted %v", m)
		}
		for _, sub := range []string{"store", "volumes", "tmp"} {
			if got := entries(t, filepath.Join(node.state, sub)); len(got) > 0 {
				t.Errorf("bad volumes left %v in %s", got, sub)
			}
		}
	})
}

func createPod(t *testing.T, c *cluster.Cluster, ns, name string, command []string, attrs map[string]string) {
	t.Helper()
	grace := int64(2)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name:            "main",
				Image:           cluster.ScratchImage,
				ImagePullPolicy: corev1.PullNever,
				Command:         command,
				VolumeMounts:    []corev1.VolumeMount{{Name: "nix", MountPath: "/nix"}},
			}},
			Volumes: []corev1.Volume{{
				Name: "nix",
				VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
					Driver:           "csi.kix.dev",
					VolumeAttributes: attrs,
				}},
			}},
		},
	}
	if _, err := c.Client().CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitForEvent returns the message of the first event with reason about
// pod name.
func waitForEvent(t *testing.T, c *cluster.Cluster, ns, name, reason string) string {
	t.Helper()
	var msg string
	waitUntil(t, 60*time.Second, reason+" event for pod "+name, func() bool {
		events, err := c.Client().CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, e := range events.Items {
			if e.InvolvedObject.Name == name && e.Reason == reason {
				msg = e.Message
				return true
			}
		}
		return false
	})
	return msg
}

// deletePodsAndWait deletes the namespace's pods and waits until they are
// gone and the kubelet has unpublished their volumes.
func deletePodsAndWait(t *testing.T, c *cluster.Cluster, ns string, node *csiNode) {
	t.Helper()
	ctx := context.Background() // also called from a cleanup
	pods := c.Client().CoreV1().Pods(ns)
	list, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Error(err)
		return
	}
	for _, p := range list.Items {
		if err := pods.Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
	}
	waitUntil(t, 90*time.Second, "pods to be deleted and their volumes unmounted", func() bool {
		list, err := pods.List(ctx, metav1.ListOptions{})
		return err == nil && len(list.Items) == 0 && len(node.viewMounts(t)) == 0
	})
}

// deploy/csi.nix evaluates to the objects a cluster needs.
func TestDeployCSINix(t *testing.T) {
	objs := deployObjects(t, "http://kix-cache.kix.svc:8080", "kix-cache-1:AAAA")
	kinds := map[string]map[string]any{}
	for _, o := range objs {
		kinds[o["kind"].(string)] = o
	}
	for _, k := range []string{"CSIDriver", "ServiceAccount", "DaemonSet"} {
		if kinds[k] == nil {
			t.Fatalf("no %s in %v", k, objs)
		}
	}
	spec := kinds["CSIDriver"]["spec"].(map[string]any)
	if kinds["CSIDriver"]["metadata"].(map[string]any)["name"] != "csi.kix.dev" ||
		!slices.Equal(toStrings(spec["volumeLifecycleModes"]), []string{"Ephemeral"}) ||
		spec["attachRequired"] != false || spec["podInfoOnMount"] != false {
		t.Errorf("CSIDriver: %v", kinds["CSIDriver"])
	}
	pod := kinds["DaemonSet"]["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	ctr := pod["containers"].([]any)[0].(map[string]any)
	args := strings.Join(toStrings(ctr["args"]), " ")
	for _, want := range []string{"csi ", "--substituter http://kix-cache.kix.svc:8080", "--trusted-public-key kix-cache-1:AAAA", "--kubelet-dir /var/lib/kubelet", "--node-id $(NODE_NAME)"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	if ctr["securityContext"].(map[string]any)["privileged"] != true {
		t.Error("the plugin container is not privileged")
	}
	var bidirectional []string
	for _, m := range ctr["volumeMounts"].([]any) {
		mm := m.(map[string]any)
		if mm["mountPropagation"] == "Bidirectional" {
			bidirectional = append(bidirectional, mm["mountPath"].(string))
		}
		// A mount inside the bidirectional one would propagate to the
		// host, once more on every restart of the pod.
		if strings.HasPrefix(mm["mountPath"].(string), "/var/lib/kubelet/") {
			t.Errorf("%s is mounted inside the kubelet folder", mm["mountPath"])
		}
	}
	if !slices.Equal(bidirectional, []string{"/var/lib/kubelet"}) {
		t.Errorf("Bidirectional mounts %v, want the kubelet folder", bidirectional)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// kix's own deployment of its CSI driver, deploy/csi.nix applied by kix
// apply, runs as a DaemonSet pod on the harness node: it registers with the
// kubelet without a sidecar, and a pod with an empty image runs hello from
// a volume it mounts, through the pod's Bidirectional mount of the kubelet
// folder. Deleting the pod unmounts the volume on the host.
func TestCSIDriverDeployedByKix(t *testing.T) {
	c := kube.Get(t)
	driverNS, ns := c.Namespace(t), c.Namespace(t)
	importKixImage(t, c)
	if err := c.ImportScratch(t.Context()); err != nil {
		t.Fatal(err)
	}
	hello := fixture.Build(t, "hello")
	keys := t.TempDir()
	public := strings.TrimSpace(runKix(t, "cache", "keygen", "kix-e2e-1", "--out-dir", keys))
	cache := startKixCache(t, "--dir", fixture.NewBinaryCache(t, "zstd", hello).Dir,
		"--secret-key", filepath.Join(keys, "kix-e2e-1.sec"))

	dir, err := os.MkdirTemp("", "kix-csi-pod-")
	if err != nil {
		t.Fatal(err)
	}
	node := &csiNode{state: filepath.Join(dir, "state")}
	t.Cleanup(func() {
		unmountUnder(node.state)
		os.RemoveAll(dir)
	})
	inventory := []string{"--kubeconfig", c.Info.Kubeconfig, "--inventory", "kix-csi", "--inventory-namespace", driverNS}
	t.Cleanup(func() {
		empty := filepath.Join(t.TempDir(), "empty.nix")
		must(t, writeFile(empty, "[ ]"))
		if _, stderr, code := kixCode(t, append([]string{"apply", "-f", empty, "--prune", "--allow-empty"}, inventory...)...); code != 0 {
			t.Errorf("removing the CSI driver: %s", stderr)
		}
		waitUntil(t, 90*time.Second, "the driver's pod to stop", func() bool {
			pods, err := c.Client().CoreV1().Pods(driverNS).List(context.Background(), metav1.ListOptions{})
			return err == nil && len(pods.Items) == 0
		})
	})
	// A driver of an earlier test is gone from the node first, so the
	// registration below is the DaemonSet pod's own.
	waitUntil(t, 60*time.Second, "the kubelet to forget an earlier csi.kix.dev", func() bool { return !csiRegistered(t, c) })
	runKix(t, append([]string{"apply", "-f", filepath.Join(fixture.Root(), "deploy", "csi.nix"), "--wait", "--timeout", "2m",
		"--argstr", "image=" + kixImage, "--argstr", "namespace=" + driverNS,
		"--arg", "substituters", `[ "` + cache + `" ]`, "--arg", "trustedPublicKeys", `[ "` + public + `" ]`,
		"--argstr", "kubeletDir=" + c.Info.KubeletRootDir, "--argstr", "stateDir=" + node.state,
		"--arg", "hostNetwork", "true"}, inventory...)...)
	waitUntil(t, 60*time.Second, "the kubelet registering csi.kix.dev", func() bool { return csiRegistered(t, c) })

	t.Cleanup(func() { deletePodsAndWait(t, c, ns, node) })
	createPod(t, c, ns, "hello", []string{hello + "/bin/hello", "--linger"}, map[string]string{image.CurrentSystem(): hello})
	waitForPod(t, c, ns, "hello", corev1.PodRunning)
	waitUntil(t, 30*time.Second, "hello's logs", func() bool {
		logs, err := c.Client().CoreV1().Pods(ns).GetLogs("hello", &corev1.PodLogOptions{}).DoRaw(t.Context())
		return err == nil && string(logs) == "Hello, world!\n"
	})
	if got := entries(t, filepath.Join(node.state, "volumes")); len(got) != 1 || len(node.viewMounts(t)) != 1 {
		t.Errorf("the driver's volumes %v, view mounts on the host %v: want the pod's one", got, node.viewMounts(t))
	}
	deletePodsAndWait(t, c, ns, node)
}
