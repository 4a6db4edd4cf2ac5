package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// KubeVersion is the upstream Kubernetes release the harness runs. The
// binaries are built from source by hack/kube-binaries.sh into
// KubeBinDir(); hack/tools/kubernetes/go.mod pins the same version.
const KubeVersion = "v1.36.3"

// KubeBinDir is where hack/kube-binaries.sh puts the Kubernetes binaries:
// $KIX_KUBE_BIN if set, else a per-user cache keyed by version that outlives
// clones and CI runs.
func KubeBinDir() string {
	if d := os.Getenv("KIX_KUBE_BIN"); d != "" {
		return d
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "kix", "kubernetes", KubeVersion, "bin")
}

// MissingToolError says which program the harness needs and how to get it.
type MissingToolError struct {
	Tool string
	Hint string
}

func (e *MissingToolError) Error() string {
	return fmt.Sprintf("%s not found (%s)", e.Tool, e.Hint)
}

// binaries are the programs a harness runs, resolved to absolute paths.
type binaries struct {
	KubeDir    string
	Etcd       string
	Containerd string
	Ctr        string
	Busybox    string
	CNIDir     string
}

func (b binaries) path(kube string) string { return filepath.Join(b.KubeDir, kube) }

const installHint = "run `make tools` to install it"

func resolveBinaries(opts Options) (binaries, error) {
	b := binaries{KubeDir: opts.KubeBinDir}
	if b.KubeDir == "" {
		b.KubeDir = KubeBinDir()
	}
	kube := []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}
	if opts.Node {
		kube = append(kube, "kubelet")
	}
	for _, k := range kube {
		if _, err := os.Stat(b.path(k)); err != nil {
			return b, &MissingToolError{Tool: b.path(k), Hint: "run `make tools` to build Kubernetes " + KubeVersion}
		}
	}
	var err error
	if b.Etcd, err = lookPath("etcd"); err != nil {
		return b, err
	}
	if !opts.Node {
		return b, nil
	}
	for _, p := range []struct {
		dst  *string
		name string
	}{{&b.Containerd, "containerd"}, {&b.Ctr, "ctr"}, {&b.Busybox, "busybox"}} {
		if *p.dst, err = lookPath(p.name); err != nil {
			return b, err
		}
	}
	for _, tool := range []string{"runc", "containerd-shim-runc-v2", "ip"} {
		if _, err := lookPath(tool); err != nil {
			return b, err
		}
	}
	b.CNIDir = "/usr/lib/cni"
	for _, plugin := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(b.CNIDir, plugin)); err != nil {
			return b, &MissingToolError{Tool: "CNI plugin " + plugin, Hint: installHint}
		}
	}
	return b, nil
}

// lookPath finds a program on PATH or in the sbin folders root's PATH may
// lack.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &MissingToolError{Tool: name, Hint: installHint}
}
