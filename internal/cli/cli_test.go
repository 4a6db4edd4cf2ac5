package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kix-project/kix/internal/version"
)

// run runs kix in-process and returns its exit code and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(context.Background(), args, IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return code, out.String(), errOut.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"kix ", "commit: ", "go: " + runtime.Version()} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
}

func TestVersionJSON(t *testing.T) {
	version.Version, version.Commit = "v1.2.3", "abc123"
	t.Cleanup(func() { version.Version, version.Commit = "", "" })
	code, out, _ := run(t, "version", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var info version.Info
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if info.Version != "v1.2.3" || info.Commit != "abc123" || info.GoVersion != runtime.Version() {
		t.Errorf("got %+v", info)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"version", "-o", "xml"},
		{"version", "extra"},
		{"no-such-command"},
		{"version", "--no-such-flag"},
	} {
		code, _, stderr := run(t, args...)
		if code != ExitUsage {
			t.Errorf("kix %v: exit %d, want %d", args, code, ExitUsage)
		}
		if !strings.HasPrefix(stderr, "error: ") {
			t.Errorf("kix %v: stderr %q does not start with \"error: \"", args, stderr)
		}
	}
}

func TestHelpListsCommands(t *testing.T) {
	code, out, _ := run(t, "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, cmd := range NewRootCmd(IOStreams{}).Commands() {
		if cmd.Hidden || cmd.Name() == "help" {
			continue
		}
		if !strings.Contains(out, "\n  "+cmd.Name()+" ") {
			t.Errorf("--help does not list %s:\n%s", cmd.Name(), out)
		}
	}
}

func TestRegistryAndPushFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"registry", "--tls-cert-file", "x.pem"},
		{"registry", "--trusted-public-key", "k:AAAA"},
		{"registry", "--compression", "lzma"},
		{"registry", "--layers", "0"},
		{"registry", "--cache-size", "-5Gi"},
		{"push", "only-one-arg"},
		{"image", "ref"},
	} {
		code, _, stderr := run(t, args...)
		if code != ExitUsage {
			t.Errorf("kix %v: exit %d (%s), want %d", args, code, stderr, ExitUsage)
		}
	}
}

// --push without --registry is refused before anything is evaluated or
// built: the file named does not even exist.
func TestPushNeedsRegistryBeforeEvaluating(t *testing.T) {
	for _, cmd := range []string{"build", "apply", "diff"} {
		code, _, stderr := run(t, cmd, "--push", "-f", "/no/such/file.nix")
		if code != ExitUsage || !strings.Contains(stderr, "--push needs --registry") {
			t.Errorf("kix %s --push: exit %d, %q; want %d and --push needs --registry", cmd, code, stderr, ExitUsage)
		}
	}
}

// --default-service-account must be a service account's name: kix
// controller refuses anything else before it connects, since the user it
// would impersonate, system:serviceaccount:<namespace>:<name>, would not be
// a service account's.
func TestControllerDefaultServiceAccountName(t *testing.T) {
	for _, name := range []string{"a:b", "Admin", "-x", "a_b"} {
		code, _, stderr := run(t, "controller", "--registry", "registry.test:5000", "--kubeconfig", "/nonexistent", "--default-service-account", name)
		if code != ExitUsage || !strings.Contains(stderr, "--default-service-account") {
			t.Errorf("--default-service-account %q: exit %d, stderr %q; want %d naming the flag", name, code, stderr, ExitUsage)
		}
	}
}

// An unreachable cluster is one error, not one per object, and
// client-go's own log lines stay out of it below -v 2.
func TestUnreachableClusterIsOneError(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	config := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\n" +
		"contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: x}}]\ncurrent-context: c\n"
	manifests := filepath.Join(dir, "set.yaml")
	set := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n"
	for path, text := range map[string]string{kubeconfig: config, manifests: set} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// client-go logs to the process's stderr, not to the command's.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	code, _, errOut := run(t, "apply", "-f", manifests, "--kubeconfig", kubeconfig)
	os.Stderr = stderr
	w.Close()
	logged, _ := io.ReadAll(r)
	if code != ExitFailure || strings.Count(errOut, "error:") != 1 || !strings.Contains(errOut, "reading the kinds the cluster serves") || strings.Contains(errOut, "ConfigMap/a") {
		t.Errorf("exit %d, stderr %q; want one error about the cluster", code, errOut)
	}
	if len(logged) > 0 {
		t.Errorf("client-go logged %q", logged)
	}
}

// An inventory name that cannot name a ConfigMap is refused before any
// request, by every command that takes one.
func TestBadInventoryNameIsAUsageError(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "cm.yaml")
	if err := os.WriteFile(f, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// No cluster listens here: a request would fail otherwise.
	kube := []string{"--server", "http://127.0.0.1:1", "-f", f}
	for _, args := range [][]string{
		{"apply", "--inventory", "Shop"},
		{"diff", "--inventory", "shop_1"},
		{"prune", "--inventory", "shop", "--inventory-namespace", "Team"},
	} {
		code, _, stderr := run(t, append(args, kube...)...)
		if code != ExitUsage || !strings.Contains(stderr, "inventory") || strings.Contains(stderr, "127.0.0.1:1") {
			t.Errorf("kix %v: exit %d, stderr %q; want %d naming the inventory, before any request", args, code, stderr, ExitUsage)
		}
	}
}
