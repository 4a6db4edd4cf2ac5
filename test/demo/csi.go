package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kix-project/kix/internal/image"
	"github.com/kix-project/kix/test/cluster"
	"github.com/kix-project/kix/test/fixture"
)

// csiScene is seed 001's scene: a pod whose image is empty runs hello from
// a csi.kix.dev volume at /nix, which the node fills from kix cache.
func csiScene(ctx context.Context, w io.Writer, kix *kixRunner, c *cluster.Cluster, hello string) error {
	dir := filepath.Join(c.Info.Dir, "kix-csi")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	step(w, "Store paths on nodes: a signed binary cache of the local store, kix cache")
	public, err := kix.output(ctx, "cache", "keygen", "kix-demo-1", "--out-dir", dir)
	if err != nil {
		return err
	}
	public = strings.TrimSpace(public)
	fmt.Fprintf(w, "    $ kix cache keygen kix-demo-1\n    %s\n", public)
	addr, err := freeLoopback()
	if err != nil {
		return err
	}
	if err := kix.startServer(ctx, c.Info.Dir, "kix-cache", "http://"+addr+"/healthz",
		"cache", "--store", "--secret-key", filepath.Join(dir, "kix-demo-1.sec"), "--listen", addr); err != nil {
		return err
	}
	cacheURL := "http://" + addr

	step(w, "The CSI node plugin, registered with the kubelet: kix csi")
	state := filepath.Join(dir, "state")
	if err := kix.startServer(ctx, c.Info.Dir, "kix-csi", "", "-v", "1", "csi",
		"--endpoint", "unix://"+filepath.Join(dir, "csi.sock"), "--node-id", cluster.NodeName,
		"--state-dir", state, "--kubelet-dir", c.Info.KubeletRootDir,
		"--substituter", cacheURL, "--trusted-public-key", public); err != nil {
		return err
	}
	if err := waitFor(ctx, "the kubelet to register csi.kix.dev", func() bool { return driverRegistered(ctx, c) }); err != nil {
		return err
	}
	fmt.Fprintf(w, "    CSINode %s lists csi.kix.dev\n", cluster.NodeName)
	if err := createCSIDriver(ctx, c, cacheURL, public); err != nil {
		return err
	}
	fmt.Fprintln(w, "    CSIDriver csi.kix.dev created from deploy/csi.nix (volumeLifecycleModes: [Ephemeral])")

	step(w, "Running a pod with an empty image and hello's store path in a csi.kix.dev volume at /nix")
	if err := c.ImportScratch(ctx); err != nil {
		return err
	}
	pods := c.Client().CoreV1().Pods("default")
	if _, err := pods.Create(ctx, scratchPod(hello), metav1.CreateOptions{}); err != nil {
		return err
	}
	phase, err := waitForCompletion(ctx, c, "hello-csi")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "    volumeAttributes: {%s: %s}\n    command: [%s/bin/hello]\n    pod/hello-csi %s\n", image.CurrentSystem(), hello, hello, phase)
	step(w, "kubectl logs hello-csi")
	logs, err := pods.GetLogs("hello-csi", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		return err
	}
	fmt.Fprint(w, string(logs))
	if phase != corev1.PodSucceeded || string(logs) != "Hello, world!\n" {
		return fmt.Errorf("pod hello-csi %s, logs %q", phase, logs)
	}
	return deleteAndCollect(ctx, w, c, state)
}

// deleteAndCollect deletes the pod and waits until its volume is unmounted
// and garbage collection has emptied the node's store.
func deleteAndCollect(ctx context.Context, w io.Writer, c *cluster.Cluster, state string) error {
	step(w, "Deleting the pod: the kubelet unpublishes the volume, kix csi collects the garbage")
	paths, _ := os.ReadDir(filepath.Join(state, "store"))
	if err := c.Client().CoreV1().Pods("default").Delete(ctx, "hello-csi", metav1.DeleteOptions{}); err != nil {
		return err
	}
	err := waitFor(ctx, "the volume to be unmounted and the node's store emptied", func() bool {
		left, _ := os.ReadDir(filepath.Join(state, "store"))
		mountinfo, _ := os.ReadFile("/proc/self/mountinfo")
		return len(left) == 0 && !strings.Contains(string(mountinfo), state)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "    unmounted; %d store paths freed\n", len(paths))
	return nil
}

func scratchPod(hello string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello-csi"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "hello", Image: cluster.ScratchImage, ImagePullPolicy: corev1.PullNever,
				Command:      []string{hello + "/bin/hello"},
				VolumeMounts: []corev1.VolumeMount{{Name: "nix", MountPath: "/nix"}},
			}},
			Volumes: []corev1.Volume{{Name: "nix", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver: "csi.kix.dev", VolumeAttributes: map[string]string{image.CurrentSystem(): hello},
			}}}},
		},
	}
}

// createCSIDriver creates the CSIDriver of deploy/csi.nix, evaluated by Nix.
func createCSIDriver(ctx context.Context, c *cluster.Cluster, cacheURL, public string) error {
	expr := fmt.Sprintf(`builtins.head (import %s { image = "kix"; substituters = [ %q ]; trustedPublicKeys = [ %q ]; })`,
		filepath.Join(fixture.Root(), "deploy", "csi.nix"), cacheURL, public)
	cmd := exec.CommandContext(ctx, "nix", "--extra-experimental-features", "nix-command", "eval", "--json", "--impure", "--expr", expr)
	cmd.Env = fixture.Env()
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("nix eval deploy/csi.nix: %w", err)
	}
	var d storagev1.CSIDriver
	if err := json.Unmarshal(out, &d); err != nil || d.Name != "csi.kix.dev" {
		return fmt.Errorf("deploy/csi.nix's first object is not the CSIDriver: %v: %s", err, out)
	}
	_, err = c.Client().StorageV1().CSIDrivers().Create(ctx, &d, metav1.CreateOptions{})
	return err
}

func driverRegistered(ctx context.Context, c *cluster.Cluster) bool {
	node, err := c.Client().StorageV1().CSINodes().Get(ctx, cluster.NodeName, metav1.GetOptions{})
	if err != nil {
		return false
	}
	for _, d := range node.Spec.Drivers {
		if d.Name == "csi.kix.dev" {
			return true
		}
	}
	return false
}
