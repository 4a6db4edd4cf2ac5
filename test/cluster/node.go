package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// NodeName is the name the harness's kubelet registers. The API server
// reaches the kubelet by this hostname (the kubelet refuses a loopback node
// IP), so it must resolve to 127.0.0.1.
const NodeName = "localhost"

// PauseImage is the sandbox image every pod starts with. It is built
// locally from busybox and imported into containerd: no image comes from the
// internet.
const PauseImage = "kix.local/pause:1"

// startNode starts containerd, imports the pause image, and once the API
// server is ready starts the kubelet and waits until the node is Ready.
func (s *supervisor) startNode(ctx context.Context, apiReady <-chan struct{}) error {
	net, err := leaseNetwork(s.dir)
	if err != nil {
		return err
	}
	s.info.PodSubnet = net.Subnet.String()
	s.info.Bridge = net.Bridge

	cniConfDir := filepath.Join(s.dir, "cni", "net.d")
	if err := writeCNIConfig(cniConfDir, filepath.Join(s.dir, "cni", "ipam"), net); err != nil {
		return err
	}

	containerdDir := filepath.Join(s.dir, "containerd")
	sock := filepath.Join(containerdDir, "containerd.sock")
	registryDir := filepath.Join(containerdDir, "certs.d")
	if err := os.MkdirAll(registryDir, 0o755); err != nil {
		return err
	}
	configPath := filepath.Join(containerdDir, "config.toml")
	if err := writeTemplate(configPath, containerdConfig, map[string]string{
		"Dir":         containerdDir,
		"Socket":      sock,
		"PauseImage":  PauseImage,
		"CNIBinDir":   s.bins.CNIDir,
		"CNIConfDir":  cniConfDir,
		"RegistryDir": registryDir,
	}); err != nil {
		return err
	}
	s.info.ContainerdAddress = sock
	s.info.RegistryConfigDir = registryDir

	s.progress("starting containerd")
	containerd, err := s.start("containerd", s.bins.Containerd, []string{"--config", configPath}, nil)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, containerd, 30*time.Second, func() error {
		return criReady(ctx, sock)
	}); err != nil {
		return fmt.Errorf("waiting for containerd: %w", err)
	}

	s.progress("importing the pause image")
	archive := filepath.Join(s.dir, "pause.tar")
	if err := writePauseArchive(archive, s.bins.Busybox); err != nil {
		return err
	}
	if out, err := ctrCommand(ctx, s.bins.Ctr, sock, "images", "import", archive).CombinedOutput(); err != nil {
		return fmt.Errorf("importing %s: %v: %s", PauseImage, err, out)
	}

	select {
	case <-apiReady:
	case <-ctx.Done():
		return ctx.Err()
	}

	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	kubeletDir := filepath.Join(s.dir, "kubelet")
	if err := os.MkdirAll(kubeletDir, 0o755); err != nil {
		return err
	}
	kubeletConfig := filepath.Join(s.dir, "kubelet-config.yaml")
	if err := writeTemplate(kubeletConfig, kubeletConfigTemplate, map[string]string{
		"Port":        strconv.Itoa(ports[0]),
		"HealthzPort": strconv.Itoa(ports[1]),
		"Socket":      sock,
		"Dir":         kubeletDir,
		"CACert":      s.info.CACert,
	}); err != nil {
		return err
	}
	s.info.KubeletRootDir = kubeletDir

	s.progress("starting kubelet")
	kubelet, err := s.start("kubelet", s.bins.path("kubelet"), []string{
		"--config", kubeletConfig,
		"--kubeconfig", s.info.Kubeconfig,
		"--root-dir", kubeletDir,
		"--cert-dir", filepath.Join(kubeletDir, "pki"),
		"--hostname-override", NodeName,
	}, nil)
	if err != nil {
		return err
	}

	s.progress("waiting for node " + NodeName + " to be Ready")
	client, err := clientFor(s.info.Kubeconfig)
	if err != nil {
		return err
	}
	return waitFor(ctx, kubelet, 90*time.Second, func() error {
		node, err := client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("node %s is not Ready", NodeName)
	})
}

func clientFor(kubeconfig string) (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

func ctrCommand(ctx context.Context, ctr, sock string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, ctr, append([]string{"--address", sock, "--namespace", "k8s.io"}, args...)...)
}

// criReady asks containerd's CRI service for its status.
func criReady(ctx context.Context, sock string) error {
	if _, err := os.Stat(sock); err != nil {
		return err
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = runtimeapi.NewRuntimeServiceClient(conn).Status(ctx, &runtimeapi.StatusRequest{})
	return err
}

// removePodSandboxes stops and removes every pod sandbox through the CRI, so
// the CNI plugin releases addresses and interfaces before containerd stops.
func removePodSandboxes(ctx context.Context, sock string) error {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	var errs []string
	for _, sb := range list.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("removing pod sandboxes: %s", strings.Join(errs, "; "))
	}
	return nil
}

func writeCNIConfig(confDir, ipamDir string, n *podNetwork) error {
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return err
	}
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       n.Bridge,
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      n.Bridge,
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": n.Subnet.String(), "gateway": n.Gateway.String()}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": ipamDir,
				},
			},
		},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(confDir, "10-kix.conflist"), data, 0o644)
}

func writeTemplate(path, text string, data any) error {
	tmpl, err := template.New(filepath.Base(path)).Option("missingkey=error").Parse(text)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := tmpl.Execute(f, data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// containerd with everything under the harness folder. restrict_oom_score_adj
// because the machine may lack CAP_SYS_RESOURCE; network namespaces under
// the state folder so a sweep finds them.
const containerdConfig = `version = 2
root = "{{.Dir}}/root"
state = "{{.Dir}}/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{{.Socket}}"

[ttrpc]
  address = "{{.Socket}}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{{.Dir}}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{.PauseImage}}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{{.CNIBinDir}}"
    conf_dir = "{{.CNIConfDir}}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{{.RegistryDir}}"
`

// A kubelet for a cgroup v1 host without systemd, on loopback, with anonymous
// read access for the API server (logs, exec), image garbage collection and
// disk-pressure eviction effectively off so a full disk does not delete the
// pause image mid-test.
const kubeletConfigTemplate = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: {{.Port}}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {{.HealthzPort}}
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
  x509:
    clientCAFile: {{.CACert}}
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://{{.Socket}}
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
failCgroupV1: false
podLogsDir: {{.Dir}}/pod-logs
volumePluginDir: {{.Dir}}/volume-plugins
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
serializeImagePulls: false
registerNode: true
nodeStatusUpdateFrequency: 2s
syncFrequency: 10s
fileCheckFrequency: 10s
`
