package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kix-project/kix/test/cluster"
	"github.com/kix-project/kix/test/fixture"
)

// startKixCache runs `kix cache` on a free port and returns its URL.
func startKixCache(t *testing.T, args ...string) string {
	t.Helper()
	addr := freeAddr(t)
	kixServer{name: "kix cache", addr: addr, args: append([]string{"cache", "--listen", addr}, args...)}.start(t)
	return "http://" + addr
}

// csiNode is kix csi running on the harness's node as a host process.
type csiNode struct {
	state string
	logs  *bytes.Buffer
}

// startKixCSI runs `kix csi` registered with the harness's kubelet and
// waits until the kubelet has registered the driver. When the test ends it
// waits for the kubelet to unpublish the test's volumes (the pods must be
// gone by then) before it stops the driver, and unmounts what is left.
func startKixCSI(t *testing.T, c *cluster.Cluster, args ...string) *csiNode {
	t.Helper()
	dir, err := os.MkdirTemp("", "kix-csi-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	n := &csiNode{state: filepath.Join(dir, "state")}
	t.Cleanup(func() {
		unmountUnder(n.state)
		os.RemoveAll(dir)
	})
	args = append([]string{"-v", "2", "csi",
		"--endpoint", "unix://" + filepath.Join(dir, "csi.sock"),
		"--node-id", cluster.NodeName,
		"--state-dir", n.state,
		"--kubelet-dir", c.Info.KubeletRootDir,
	}, args...)
	n.logs, _ = kixServer{name: "kix csi", args: args}.start(t)
	waitUntil(t, 60*time.Second, "the kubelet registering csi.kix.dev", func() bool { return csiRegistered(t, c) })
	return n
}

// csiRegistered reports whether the node's CSINode lists csi.kix.dev.
func csiRegistered(t *testing.T, c *cluster.Cluster) bool {
	node, err := c.Client().StorageV1().CSINodes().Get(t.Context(), cluster.NodeName, metav1.GetOptions{})
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

// viewMounts lists the mounts of this node's volume views.
func (n *csiNode) viewMounts(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[3], n.state) {
			out = append(out, f[4])
		}
	}
	return out
}

// unmountUnder detaches every mount whose source is under dir.
func unmountUnder(dir string) {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[3], dir) {
			_ = unix.Unmount(f[4], unix.MNT_DETACH)
		}
	}
}

// entries lists a folder's names (nil if it does not exist).
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// deployObjects evaluates deploy/csi.nix with nix eval --json.
func deployObjects(t *testing.T, substituter, key string) []map[string]any {
	t.Helper()
	expr := `import ` + filepath.Join(fixture.Root(), "deploy", "csi.nix") +
		` { image = "nix.internal/kix"; substituters = [ "` + substituter + `" ]; trustedPublicKeys = [ "` + key + `" ]; }`
	out := fixture.RunNix(t, "nix", "--extra-experimental-features", "nix-command", "eval", "--json", "--impure", "--expr", expr)
	var objs []map[string]any
	if err := json.Unmarshal([]byte(out), &objs); err != nil {
		t.Fatalf("nix eval of deploy/csi.nix: %v\n%s", err, out)
	}
	return objs
}

// createCSIDriver creates the CSIDriver object deploy/csi.nix defines.
func createCSIDriver(t *testing.T, c *cluster.Cluster, objs []map[string]any) {
	t.Helper()
	for _, o := range objs {
		if o["kind"] != "CSIDriver" {
			continue
		}
		data, _ := json.Marshal(o)
		var d storagev1.CSIDriver
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatal(err)
		}
		_, err := c.Client().StorageV1().CSIDrivers().Create(t.Context(), &d, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating CSIDriver: %v", err)
		}
		return
	}
	t.Fatal("deploy/csi.nix has no CSIDriver")
}
