package e2e

import (
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/test/fixture"
	"github.com/kix-project/kix/test/testenv"
)

// skopeo copies the image into an OCI layout, umoci unpacks it, and hello
// runs in a chroot of the rootfs: the image is exactly a working closure.
func TestSkopeoUmociChroot(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root, which chroot needs")
	}
	skopeo := testenv.LookPath(t, "skopeo")
	umoci := testenv.LookPath(t, "umoci")
	hello := fixture.Build(t, "hello")
	host := startRegistry(t)
	layout := filepath.Join(t.TempDir(), "layout")
	run(t, skopeo, "copy", "--src-tls-verify=false", "docker://"+host+"/"+nix.BaseName(hello)+":latest", "oci:"+layout+":hello")
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, umoci, "unpack", "--image", layout+":hello", bundle)
	cmd := exec.Command(hello + "/bin/hello")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: filepath.Join(bundle, "rootfs")}
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "Hello, world!\n" {
		t.Fatalf("hello in the unpacked rootfs: %q, %v", out, err)
	}
	// Nothing but the closure is in the rootfs.
	entries, err := os.ReadDir(filepath.Join(bundle, "rootfs", "nix", "store"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, nix.StoreDir+"/"+e.Name())
	}
	if want := fixture.Closure(t, hello); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("rootfs store holds %v, want the closure %v", got, want)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// containerd's ctr, the strictest client, pulls from kix registry and runs
// the image.
func TestCtrPullAndRun(t *testing.T) {
	c := kube.Get(t)
	hello := fixture.Build(t, "hello")
	host := startRegistry(t)
	ref := host + "/" + nix.BaseName(hello) + ":latest"
	ctr := func(args ...string) (string, error) {
		out, err := c.Ctr(t.Context(), append([]string{"--namespace", "kix-e2e"}, args...)...)
		return string(out), err
	}
	if out, err := ctr("images", "pull", "--plain-http", ref); err != nil {
		t.Fatalf("ctr pull: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = ctr("images", "rm", ref) })
	out, err := ctr("run", "--rm", ref, "kix-e2e-hello")
	if err != nil || out != "Hello, world!\n" {
		t.Fatalf("ctr run: %q, %v", out, err)
	}
}

// A pod names its image nix.internal/<hash>-<name>; the node's containerd
// maps nix.internal to kix registry, and the pod runs the closure.
func TestPodPullsFromNixInternal(t *testing.T) {
	c := kube.Get(t)
	ns := c.Namespace(t)
	hello := fixture.Build(t, "hello")
	host := startRegistry(t)
	if err := c.MirrorRegistry("nix.internal", "http://"+host); err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimSpace(runKix(t, "image", "ref", hello))
	if want := "nix.internal/" + nix.BaseName(hello); ref != want {
		t.Fatalf("kix image ref = %q, want %q", ref, want)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "hello", Image: ref}},
		},
	}
	pods := c.Client().CoreV1().Pods(ns)
	if _, err := pods.Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForPod(t, c, ns, "hello", corev1.PodSucceeded)
	logs, err := pods.GetLogs("hello", &corev1.PodLogOptions{}).DoRaw(t.Context())
	if err != nil || string(logs) != "Hello, world!\n" {
		t.Fatalf("logs %q, %v", logs, err)
	}
}

// kix push writes to a real registry (go-containerregistry's), skips blobs
// that are there, and does nothing when the tag already holds the image.
func TestPush(t *testing.T) {
	hello := fixture.Build(t, "hello")
	var uploads atomic.Int64
	reg := ggcrregistry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost || r.Method == http.MethodPatch || r.Method == http.MethodPut {
			uploads.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	cacheDir := t.TempDir()

	out := strings.TrimSpace(runKix(t, "push", "--cache-dir", cacheDir, hello, host+"/hello"))
	if !strings.HasPrefix(out, host+"/hello@sha256:") {
		t.Fatalf("kix push printed %q", out)
	}
	tagged, err := name.ParseReference(host+"/hello:"+nix.HashPart(hello), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(tagged)
	if err != nil {
		t.Fatalf("the default tag is the store hash: %v", err)
	}
	if err := validate.Image(img); err != nil {
		t.Error(err)
	}
	if d, _ := img.Digest(); !strings.HasSuffix(out, d.String()) {
		t.Errorf("pushed %s, printed %s", d, out)
	}

	// Again: nothing is uploaded.
	before := uploads.Load()
	if again := strings.TrimSpace(runKix(t, "push", "--cache-dir", cacheDir, hello, host+"/hello")); again != out {
		t.Errorf("second push printed %q, want %q", again, out)
	}
	if n := uploads.Load() - before; n != 0 {
		t.Errorf("second push made %d upload requests", n)
	}

	// Another tag of the same image uploads no blob, only the manifest.
	before = uploads.Load()
	runKix(t, "push", "--cache-dir", cacheDir, hello, host+"/hello:v1")
	if n := uploads.Load() - before; n != 1 {
		t.Errorf("pushing a new tag made %d upload requests, want 1 (the manifest)", n)
	}
}

func TestPushErrors(t *testing.T) {
	for _, args := range [][]string{
		{"push", "/nix/store/00000000000000000000000000000000-missing", "127.0.0.1:1/x"},
		{"push", "/etc/passwd", "127.0.0.1:1/x"},
		{"push", fixture.Build(t, "hello"), "UPPER/Case"},
	} {
		out, err := kixCommand(t, args...)
		if err == nil {
			t.Errorf("kix %v succeeded: %s", args, out)
		}
	}
}

// Served from a binary cache, kix registry needs no Nix at all: with no nix
// on its PATH it serves the same image, digest for digest, as from the
// local store.
func TestRegistryFromBinaryCacheNeedsNoNix(t *testing.T) {
	hello := fixture.Build(t, "hello")
	bc := fixture.NewBinaryCache(t, "zstd", hello)
	local := startRegistry(t)
	noNix := []string{"PATH=" + t.TempDir(), "HOME=" + t.TempDir()}
	fromCache := startRegistryEnv(t, noNix, "--substituter", bc.URL(), "--trusted-public-key", bc.Key.Public)
	var digests []string
	for _, host := range []string{local, fromCache} {
		ref, err := name.ParseReference(host+"/"+nix.BaseName(hello), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("pulling from %s: %v", host, err)
		}
		if err := validate.Image(img); err != nil {
			t.Error(err)
		}
		d, _ := img.Digest()
		digests = append(digests, d.String())
	}
	if digests[0] != digests[1] {
		t.Errorf("local store serves %s, binary cache %s", digests[0], digests[1])
	}
}
