package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/catalog"
	"github.com/kix-project/kix/internal/controller"
	"github.com/kix-project/kix/test/cluster"
	"github.com/kix-project/kix/test/fixture"
)

// kixImage is the name the harness node knows kixPodImage by.
const kixImage = "kix.local/kix:e2e"

var (
	importedKixImage sync.Once
	importErr        error // what importing said, for every test after the first
)

// importKixImage gives the harness node kixPodImage as kixImage, once.
func importKixImage(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	importedKixImage.Do(func() {
		// Still set if kixPodImage ends this test half way.
		importErr = errors.New("building or importing the kix image failed in an earlier test")
		importErr = c.ImportImage(context.Background(), kixImage, kixPodImage(t))
	})
	if importErr != nil {
		t.Fatal(importErr)
	}
}

func kubeClient(t *testing.T, c *cluster.Cluster) client.Client {
	t.Helper()
	cl, err := client.New(c.RESTConfig(), client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func freePort(t *testing.T) int {
	t.Helper()
	_, port, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return n
}

// waitNixImage waits until a NixImage reaches a phase.
func waitNixImage(t *testing.T, cl client.Client, ns, name string, phase v1alpha1.NixImagePhase) *v1alpha1.NixImage {
	t.Helper()
	var img v1alpha1.NixImage
	waitState(t, 3*time.Minute, fmt.Sprintf("NixImage %s/%s %s", ns, name, phase), func() (bool, string) {
		if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &img); err != nil {
			return false, err.Error()
		}
		current := img.Status.ObservedGeneration == img.Generation
		if current && img.Status.Phase == v1alpha1.NixImageFailed && phase != v1alpha1.NixImageFailed {
			t.Fatalf("NixImage %s/%s failed: %s", ns, name, img.Status.Message)
		}
		return img.Status.Phase == phase && current, string(img.Status.Phase) + ": " + img.Status.Message
	})
	return &img
}

// kix apply -f deploy installs kix in the harness cluster: CRDs, RBAC and a
// Deployment running kix controller and kix registry with the node's Nix
// store. A NixImage is built in the pod and served by its registry; the
// node pulls and runs it (as a pod, and with ctr); an Installation of a
// catalogue block is applied with the service account's permissions.
func TestKixDeploysKix(t *testing.T) {
	c := kube.Get(t)
	ctx := context.Background()
	importKixImage(t, c)
	// The pod sees the node's store: the package set goes there, with
	// everything it imports.
	pkgs, err := catalog.Publishable(ctx, filepath.Join(fixture.Dir(), "default.nix"), "")
	if err != nil {
		t.Fatal(err)
	}
	registryPort, metricsPort, healthPort := freePort(t), freePort(t), freePort(t)
	registryHost := fmt.Sprintf("kix-registry.test:%d", registryPort)
	if err := c.MirrorRegistry(registryHost, fmt.Sprintf("http://127.0.0.1:%d", registryPort)); err != nil {
		t.Fatal(err)
	}
	apiServer := strings.TrimPrefix(c.Info.Server, "https://")
	t.Cleanup(func() { uninstallKix(t, c) })
	runKix(t, "apply", "-f", filepath.Join(fixture.Root(), "deploy"), "--kubeconfig", c.Info.Kubeconfig,
		"--inventory", "kix", "--inventory-namespace", "default", "--wait", "--timeout", "3m",
		"--argstr", "image="+kixImage, "--argstr", "packageSet="+filepath.Dir(pkgs),
		"--arg", "hostNetwork=true", "--argstr", "apiServer="+apiServer,
		"--argstr", "registryHost="+registryHost, "--arg", fmt.Sprintf("registryPort=%d", registryPort),
		"--arg", fmt.Sprintf("metricsPort=%d", metricsPort), "--arg", fmt.Sprintf("healthPort=%d", healthPort),
		"--argstr", "resync=5s", "--argstr", "defaultServiceAccount=installer",
		"--argstr", "nixConf=experimental-features = nix-command flakes\nbuild-users-group =\nsandbox = false\nsubstituters =\n")

	cl := kubeClient(t, c)
	var lease coordinationv1.Lease
	waitUntil(t, time.Minute, "the controller to lead", func() bool {
		err := cl.Get(ctx, client.ObjectKey{Namespace: "kix", Name: "kix-controller.kix.dev"}, &lease)
		return err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != ""
	})

	ns := c.Namespace(t)
	t.Run("NixImage", func(t *testing.T) {
		img := &v1alpha1.NixImage{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hello"},
			Spec:       v1alpha1.NixImageSpec{Contents: []string{"hello"}, Tag: "v1"},
		}
		if err := cl.Create(ctx, img); err != nil {
			t.Fatal(err)
		}
		img = waitNixImage(t, cl, ns, "hello", v1alpha1.NixImageBuilt)
		if !strings.HasPrefix(img.Status.Image, registryHost+"/") || !strings.Contains(img.Status.Image, "@sha256:") {
			t.Fatalf("status.image %q", img.Status.Image)
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hello"},
			Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "hello", Image: img.Status.Image}},
			},
		}
		if err := cl.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		waitForPod(t, c, ns, "hello", corev1.PodSucceeded)
		logs, err := c.Client().CoreV1().Pods(ns).GetLogs("hello", &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil || string(logs) != "Hello, world!\n" {
			t.Errorf("pod logs %q, %v", logs, err)
		}
		// ctr, through the same mirror configuration.
		ctr := func(args ...string) (string, error) {
			out, err := c.Ctr(ctx, append([]string{"--namespace", "kix-e2e"}, args...)...)
			return string(out), err
		}
		if out, err := ctr("images", "pull", "--hosts-dir", c.Info.RegistryConfigDir, img.Status.Image); err != nil {
			t.Fatalf("ctr pull: %v\n%s", err, out)
		}
		t.Cleanup(func() { _, _ = ctr("images", "rm", img.Status.Image) })
		if out, err := ctr("run", "--rm", img.Status.Image, "kix-e2e-niximage"); err != nil || out != "Hello, world!\n" {
			t.Errorf("ctr run: %q, %v", out, err)
		}
	})

	t.Run("Installation", func(t *testing.T) {
		runKix(t, "catalog", "publish", "-f", filepath.Join(fixture.Dir(), "catalog.nix"), "--kubeconfig", c.Info.Kubeconfig, "-n", "default")
		// The controller runs with --default-service-account installer:
		// the Installation applies as that account, with the namespace
		// admin's rights only.
		for _, o := range []client.Object{
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "installer"}},
			&rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "installer"},
				RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "admin"},
				Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "installer"}},
			},
		} {
			if err := cl.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		inst := &v1alpha1.Installation{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
			Spec: v1alpha1.InstallationSpec{Block: "hello-web", Version: "1.0",
				Values: &runtime.RawExtension{Raw: []byte(`{"greeting":"Hello from the pod"}`)}},
		}
		if err := cl.Create(ctx, inst); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteAndWait(t, cl, inst) })
		waitState(t, 2*time.Minute, "the Installation Ready", func() (bool, string) {
			if err := cl.Get(ctx, client.ObjectKeyFromObject(inst), inst); err != nil {
				return false, err.Error()
			}
			c := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
			if c == nil {
				return false, "no Ready condition"
			}
			return c.Status == metav1.ConditionTrue, c.Reason + ": " + c.Message
		})
		var cm corev1.ConfigMap
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "greeting"}, &cm); err != nil || cm.Data["greeting"] != "Hello from the pod" {
			t.Errorf("greeting %v, %v", cm.Data, err)
		}
	})
}

func deleteAndWait(t *testing.T, cl client.Client, obj client.Object) {
	t.Helper()
	ctx := context.Background()
	if err := cl.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
		t.Error(err)
		return
	}
	waitUntil(t, time.Minute, "deleting "+obj.GetName(), func() bool {
		return apierrors.IsNotFound(cl.Get(ctx, client.ObjectKeyFromObject(obj), obj))
	})
}

// uninstallKix deletes what kix apply -f deploy made: the set, pruned by
// kix, then the namespace and its lease.
func uninstallKix(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	empty := filepath.Join(t.TempDir(), "empty.nix")
	must(t, writeFile(empty, "[ ]"))
	if _, stderr, code := kixCode(t, "apply", "-f", empty, "--kubeconfig", c.Info.Kubeconfig,
		"--inventory", "kix", "--inventory-namespace", "default", "--prune", "--allow-empty"); code != 0 {
		t.Errorf("pruning kix: %s", stderr)
	}
	ctx := context.Background()
	if err := c.Client().CoreV1().Namespaces().Delete(ctx, "kix", metav1.DeleteOptions{}); client.IgnoreNotFound(err) != nil {
		t.Error(err)
	}
	waitUntil(t, 2*time.Minute, "namespace kix gone", func() bool {
		_, err := c.Client().CoreV1().Namespaces().Get(ctx, "kix", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}
