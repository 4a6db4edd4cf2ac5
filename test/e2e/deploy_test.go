package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kix-project/kix/test/cluster"
	"github.com/kix-project/kix/test/fixture"
)

// kixCode runs kix and returns stdout, stderr and the exit code.
func kixCode(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(kix, args...)
	cmd.Env = fixture.Env()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	}
	t.Fatalf("kix %s: %v", strings.Join(args, " "), err)
	return "", "", -1
}

type changeSet struct {
	Changes []struct {
		Object struct{ Kind, Namespace, Name string }
		Action string
		Status string
	}
}

func (cs changeSet) actions() map[string]string {
	m := map[string]string{}
	for _, c := range cs.Changes {
		m[c.Object.Kind+"/"+c.Object.Name] = c.Action
	}
	return m
}

func shopFile() string { return filepath.Join(fixture.Dir(), "deploy", "shop.nix") }

// The whole journey of ux.md's first scene on the harness node: diff,
// apply --prune --wait (the Deployment's image is pulled from kix registry
// as nix.internal/...), serve a page, change, prune, uninstall.
func TestApplyDiffPruneJourney(t *testing.T) {
	c := kube.Get(t)
	ns := c.Namespace(t)
	shop := ns + "-shop"
	t.Cleanup(func() {
		_ = c.Client().CoreV1().Namespaces().Delete(context.Background(), shop, metav1.DeleteOptions{})
	})
	host := startRegistry(t)
	if err := c.MirrorRegistry("nix.internal", "http://"+host); err != nil {
		t.Fatal(err)
	}
	common := []string{"--kubeconfig", c.Info.Kubeconfig, "--inventory-namespace", ns, "-f", shopFile(), "--argstr", "namespace=" + shop, "--inventory", "shop"}
	run := func(args ...string) (string, string, int) { return kixCode(t, append(args, common...)...) }

	if _, stderr, code := run("diff"); code != 1 {
		t.Fatalf("diff before anything is applied: exit %d, want 1\n%s", code, stderr)
	}

	out, stderr, code := run("apply", "--prune", "--wait", "--timeout", "2m", "-o", "json")
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, stderr)
	}
	var cs changeSet
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("apply -o json: %v\n%s", err, out)
	}
	for obj, want := range map[string]string{"Namespace/" + shop: "created", "Deployment/web": "created", "ConfigMap/worker": "created"} {
		if got := cs.actions()[obj]; got != want {
			t.Errorf("%s: %s, want %s", obj, got, want)
		}
	}
	for _, ch := range cs.Changes {
		if ch.Object.Kind == "Deployment" && ch.Status != "Current" {
			t.Errorf("the Deployment is %q after --wait, want Current", ch.Status)
		}
	}
	checkServes(t, c, shop, "Hello from kix")

	if _, stderr, code := run("diff"); code != 0 {
		t.Errorf("diff right after apply: exit %d, want 0\n%s", code, stderr)
	}

	// A server dry run of a change reports it and changes nothing.
	out, _, code = run("apply", "--prune", "--dry-run=server", "--arg", "version=2", "--arg", "withWorker=false")
	if code != 0 || !strings.Contains(out, "pruned (server dry run)") {
		t.Errorf("dry run: exit %d\n%s", code, out)
	}
	if _, err := c.Client().CoreV1().ConfigMaps(shop).Get(context.Background(), "worker", metav1.GetOptions{}); err != nil {
		t.Errorf("a dry run deleted the worker: %v", err)
	}

	out, stderr, code = run("apply", "--prune", "--wait", "--timeout", "2m", "-o", "json", "--arg", "version=2", "--arg", "withWorker=false")
	if code != 0 {
		t.Fatalf("second apply: exit %d\n%s", code, stderr)
	}
	cs = changeSet{}
	_ = json.Unmarshal([]byte(out), &cs)
	for obj, want := range map[string]string{"ConfigMap/worker": "pruned", "ConfigMap/settings": "configured", "Deployment/web": "configured", "Service/web": "unchanged"} {
		if got := cs.actions()[obj]; got != want {
			t.Errorf("after the change, %s: %s, want %s", obj, got, want)
		}
	}

	// Uninstall: an empty set is refused, then allowed.
	noFile := []string{"--kubeconfig", c.Info.Kubeconfig, "--inventory-namespace", ns, "--inventory", "shop"}
	if _, stderr, code := kixCode(t, append([]string{"prune"}, noFile...)...); code != 1 || !strings.Contains(stderr, "--allow-empty") {
		t.Errorf("pruning an empty set: exit %d, %s", code, stderr)
	}
	out, stderr, code = kixCode(t, append([]string{"prune", "--allow-empty"}, noFile...)...)
	if code != 0 || !strings.Contains(out, "Namespace") || !strings.Contains(out, "pruned") {
		t.Errorf("uninstall: exit %d\n%s\n%s", code, out, stderr)
	}
}

// checkServes fetches the web pod's page over the pod network.
func checkServes(t *testing.T, c *cluster.Cluster, ns, want string) {
	t.Helper()
	pods, err := c.Client().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("web pods: %v, %v", pods, err)
	}
	var ip string
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning {
			ip = p.Status.PodIP
		}
	}
	var body []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get(fmt.Sprintf("http://%s:8080/", ip))
		if err != nil {
			continue
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), want) {
			return
		}
	}
	t.Errorf("the web pod at %s did not serve %q (last answer %q)", ip, want, body)
}

// Bad input: a clear error naming what is wrong, non-zero exit, and
// nothing applied.
func TestApplyBadInput(t *testing.T) {
	c := kube.Get(t)
	ns := c.Namespace(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := writeFile(p, content); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n---\n"
	for _, tt := range []struct {
		name, file string
		want       []string
	}{
		{"evaluation error", write("broken.nix", "{ a = ; }"), []string{"broken.nix", "syntax error"}},
		{"no kind", write("nokind.yaml", good+"apiVersion: v1\nmetadata: {name: x}\n"), []string{"nokind.yaml", "no kind"}},
		{"unknown kind", write("unknown.yaml", good+"apiVersion: nothing.example.org/v1\nkind: Gadget\nmetadata: {name: g}\n"), []string{"Gadget/g", "no kind Gadget"}},
		{"field rejected", write("rejected.yaml", good+"apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: [{port: 99999}]}\n"), []string{"Service/" + ns + "/bad", "port"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := kixCode(t, "apply", "--kubeconfig", c.Info.Kubeconfig, "-n", ns, "-f", tt.file)
			if code == 0 {
				t.Fatal("apply succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if _, err := c.Client().CoreV1().ConfigMaps(ns).Get(context.Background(), "fine", metav1.GetOptions{}); err == nil {
				t.Error("the good object in the same stage was applied")
			}
		})
	}

	// A conflict with another field manager names it.
	cm := write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owned}\ndata: {k: kix}\n")
	if _, stderr, code := kixCode(t, "apply", "--kubeconfig", c.Info.Kubeconfig, "-n", ns, "-f", cm); code != 0 {
		t.Fatal(stderr)
	}
	obj, _ := c.Client().CoreV1().ConfigMaps(ns).Get(context.Background(), "owned", metav1.GetOptions{})
	obj.Data["k"] = "hand-edited"
	if _, err := c.Client().CoreV1().ConfigMaps(ns).Update(context.Background(), obj, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := kixCode(t, "apply", "--kubeconfig", c.Info.Kubeconfig, "-n", ns, "-f", write("cm2.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owned}\ndata: {k: kix2}\n"))
	if code != 1 || !strings.Contains(stderr, "ConfigMap/"+ns+"/owned") || !strings.Contains(stderr, "kubectl-edit") {
		t.Errorf("conflict: exit %d\n%s", code, stderr)
	}
}

func TestBuildRewritesAndPushes(t *testing.T) {
	hello := fixture.Build(t, "hello")
	out := runKix(t, "build", "-f", fixture.Dir(), "-A", "manifests", "--registry", "registry.example.org:5000")
	if !strings.Contains(out, "image: registry.example.org:5000/"+strings.TrimPrefix(hello, "/nix/store/")) || strings.Contains(out, "nix.internal") {
		t.Errorf("--registry did not rewrite the images:\n%s", out)
	}
	host := startRegistryForPush(t)
	out = runKix(t, "build", "-f", fixture.Dir(), "-A", "manifests", "--registry", host, "--push", "-o", "json", "--cache-dir", t.TempDir())
	var list struct{ Items []map[string]any }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, host+"/"+strings.TrimPrefix(hello, "/nix/store/")+"@sha256:") {
		t.Errorf("--push did not name the images by digest:\n%s", out)
	}
}
