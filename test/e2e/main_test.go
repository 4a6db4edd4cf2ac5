// Package e2e runs the kix binary against real clients and a real cluster:
// registry clients (skopeo, umoci, containerd's ctr, go-containerregistry)
// and the harness's kubelet.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kix-project/kix/test/cluster"
	"github.com/kix-project/kix/test/fixture"
)

var (
	kube = cluster.NewShared(cluster.Options{Node: true})
	kix  string // the kix binary under test
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kix-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kix = filepath.Join(dir, "kix")
	build := exec.Command("go", "build", "-o", kix, "./cmd/kix")
	build.Dir = fixture.Root()
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building kix: %v\n%s", err, out)
		os.Exit(1)
	}
	code := kube.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// runKix runs the kix binary and returns its stdout; stderr goes to the
// test log.
func runKix(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kixCommand(t, args...)
	if err != nil {
		t.Fatalf("kix %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func kixCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(kix, args...)
	cmd.Env = fixture.Env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if stderr.Len() > 0 {
		t.Logf("kix %s stderr:\n%s", strings.Join(args, " "), stderr.String())
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, stderr.String())
	}
	return stdout.String(), nil
}

// startRegistry runs `kix registry` until the test ends and returns its
// host:port.
func startRegistry(t *testing.T, args ...string) string {
	t.Helper()
	return startRegistryEnv(t, fixture.Env(), args...)
}

// startRegistryEnv is startRegistry with a given environment.
func startRegistryEnv(t *testing.T, env []string, args ...string) string {
	t.Helper()
	addr := freeAddr(t)
	args = append([]string{"registry", "--listen", addr, "--cache-dir", t.TempDir()}, args...)
	kixServer{name: "kix registry", addr: addr, env: env, args: args}.start(t)
	return addr
}
