package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/test/fixture"
)

// startJobController runs kix controller on this machine with
// --builder job: each build is a Job on the harness node that runs kix
// image build with the node's Nix (the node's / at /host), from the package
// set packageSet.
func startJobController(t *testing.T, kubeconfig, packageSet string) (stop func()) {
	t.Helper()
	health := freeAddr(t)
	cmd := []string{"controller", "--kubeconfig", kubeconfig, "--registry", "kix-registry.test:5000", "--package-set", packageSet,
		"--metrics-bind-address", "0", "--health-probe-bind-address", health,
		"--builder", "job", "--build-job-image", kixImage, "--build-job-host-root",
		"--build-job-command", "/usr/bin/busybox chroot /host " + kix,
		"--build-job-nix-conf-dir", jobNixConfDir(t), "--cache-dir", t.TempDir()}
	_, stop = kixServer{name: "kix controller", addr: health, args: cmd}.start(t)
	return stop
}

// jobNixConfDir is the tests' Nix configuration without Nix's own sandbox,
// which a build pod cannot make (the pod is the sandbox).
func jobNixConfDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("NIX_CONF_DIR")
	if dir == "" {
		dir = filepath.Join(fixture.Root(), "hack", "nix")
	}
	conf, err := os.ReadFile(filepath.Join(dir, "nix.conf"))
	must(t, err)
	out := t.TempDir()
	must(t, writeFile(filepath.Join(out, "nix.conf"), string(conf)+"sandbox = false\n"))
	return out
}

func buildJobs(t *testing.T, cl client.Client, ns, image string) []batchv1.Job {
	t.Helper()
	var jobs batchv1.JobList
	if err := cl.List(context.Background(), &jobs, client.InNamespace(ns), client.MatchingLabels{"kix.dev/niximage": image}); err != nil {
		t.Fatal(err)
	}
	return jobs.Items
}

// Builds run as Jobs: a controller stopped mid-build is replaced by one that
// finds the running Job instead of starting another; a spec fault fails
// with the end of the build log; deleting the image deletes its Jobs.
func TestJobBuilderSurvivesARestart(t *testing.T) {
	c := kube.Get(t)
	ctx := context.Background()
	importKixImage(t, c)
	cl := kubeClient(t, c)
	ns := c.Namespace(t)
	installCRDs(t, c)

	// A package no earlier run built: it takes seconds, every time.
	slow := filepath.Join(t.TempDir(), "slow.nix")
	must(t, writeFile(slow, fmt.Sprintf(`let f = import %s { }; in {
  inherit (f) hello;
  slow = f.lib.mkDerivation {
    pname = "slow"; version = "1.0"; nonce = "%s";
    script = "sleep 6; mkdir -p $out/bin; echo 'echo slow' > $out/bin/slow; chmod +x $out/bin/slow";
  };
}`, fixture.Dir(), rand.String(8))))
	stop := startJobController(t, c.Info.Kubeconfig, slow)
	img := &v1alpha1.NixImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "slow"},
		Spec:       v1alpha1.NixImageSpec{Contents: []string{"slow"}, PackageSet: slow},
	}
	if err := cl.Create(ctx, img); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Minute, "the build Job, the image Building", func() bool {
		err := cl.Get(ctx, client.ObjectKeyFromObject(img), img)
		return err == nil && img.Status.Phase == v1alpha1.NixImageBuilding && len(buildJobs(t, cl, ns, "slow")) == 1
	})
	stop()
	if err := cl.Get(ctx, client.ObjectKeyFromObject(img), img); err != nil || img.Status.Phase != v1alpha1.NixImageBuilding {
		t.Fatalf("when the controller stopped: %s, %v", img.Status.Phase, err)
	}

	startJobController(t, c.Info.Kubeconfig, slow)
	built := waitNixImage(t, cl, ns, "slow", v1alpha1.NixImageBuilt)
	if !strings.HasSuffix(built.Status.StorePath, "-image-spec.json") {
		t.Errorf("store path %q", built.Status.StorePath)
	}
	if jobs := buildJobs(t, cl, ns, "slow"); len(jobs) != 1 {
		t.Errorf("%d build Jobs, want the one", len(jobs))
	}

	// A missing package: the Job fails and says which.
	typo := &v1alpha1.NixImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "typo"},
		Spec:       v1alpha1.NixImageSpec{Contents: []string{"hello", "no-such-package"}, PackageSet: slow},
	}
	if err := cl.Create(ctx, typo); err != nil {
		t.Fatal(err)
	}
	failed := waitNixImage(t, cl, ns, "typo", v1alpha1.NixImageFailed)
	if !strings.Contains(failed.Status.Message, "no-such-package") {
		t.Errorf("message %q does not name the missing package", failed.Status.Message)
	}

	// Deleting the image takes its Jobs (and their pods) with it.
	deleteAndWait(t, cl, built)
	waitUntil(t, time.Minute, "the build Jobs deleted", func() bool { return len(buildJobs(t, cl, ns, "slow")) == 0 })
}
