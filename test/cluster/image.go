package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// writePauseArchive writes the pause image as a docker-archive: busybox and
// a shell loop that sleeps until it is told to stop.
func writePauseArchive(path, busybox string) error {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("reading busybox for the pause image: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755, ModTime: epoch}); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: epoch}); err != nil {
		return err
	}
	if _, err := tw.Write(bin); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	img, err = forNode(img, func(c *v1.Config) {
		c.Entrypoint = []string{"/bin/busybox", "sh", "-c",
			"trap 'exit 0' TERM INT; while :; do /bin/busybox sleep 3600 & wait; done"}
	})
	if err != nil {
		return err
	}
	return writeArchive(path, PauseImage, img)
}

// ScratchImage is the image ImportScratch imports.
const ScratchImage = "kix.local/scratch:1"

// ImportScratch makes an image with no layers at all available to the
// node as ScratchImage: everything a pod of it runs comes from its volumes.
func (c *Cluster) ImportScratch(ctx context.Context) error {
	img, err := forNode(empty.Image, nil)
	if err != nil {
		return err
	}
	return c.ImportImage(ctx, ScratchImage, img)
}

// forNode gives img the node's platform, and lets edit change the rest of
// its configuration.
func forNode(img v1.Image, edit func(*v1.Config)) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	if edit != nil {
		edit(&cf.Config)
	}
	return mutate.ConfigFile(img, cf)
}

// writeArchive writes img as a docker-archive tagged ref.
func writeArchive(path, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(path, tag, img)
}

// ImportImage makes img available to the node's container runtime as ref,
// as if it had been pulled. Pods using it need imagePullPolicy IfNotPresent
// or Never.
func (c *Cluster) ImportImage(ctx context.Context, ref string, img v1.Image) error {
	if c.Info.ContainerdAddress == "" {
		return fmt.Errorf("cluster has no node")
	}
	dir, err := os.MkdirTemp(c.Info.Dir, "import-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	archive := filepath.Join(dir, "image.tar")
	if err := writeArchive(archive, ref, img); err != nil {
		return fmt.Errorf("writing %s: %w", ref, err)
	}
	if out, err := c.Ctr(ctx, "images", "import", archive); err != nil {
		return fmt.Errorf("importing %s: %v: %s", ref, err, out)
	}
	return nil
}

// Ctr runs containerd's ctr against the node's containerd, in the k8s.io
// namespace the kubelet uses.
func (c *Cluster) Ctr(ctx context.Context, args ...string) ([]byte, error) {
	bins, err := resolveBinaries(c.opts)
	if err != nil {
		return nil, err
	}
	return ctrCommand(ctx, bins.Ctr, c.Info.ContainerdAddress, args...).CombinedOutput()
}

// MirrorRegistry makes the node's containerd pull images named host/...
// from endpoint (http://127.0.0.1:PORT) instead: what a cluster does to map
// nix.internal to a kix registry. containerd reads the file on each pull.
func (c *Cluster) MirrorRegistry(host, endpoint string) error {
	if c.Info.RegistryConfigDir == "" {
		return fmt.Errorf("cluster has no node")
	}
	dir := filepath.Join(c.Info.RegistryConfigDir, host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(HostsTOML(endpoint)), 0o644)
}

// HostsTOML is the containerd hosts.toml that sends pulls to endpoint.
func HostsTOML(endpoint string) string {
	return fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", endpoint, endpoint)
}
