package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kix-project/kix/test/testenv"
)

// A re-executed test binary with helperEnv set runs runHelper instead of the
// tests: it starts a cluster in $helperDirEnv with a running pod, says
// "ready", and then dies the way helperEnv says.
const (
	helperEnv    = "KIX_CLUSTER_TEST_HELPER"
	helperDirEnv = "KIX_CLUSTER_TEST_DIR"
)

func runHelper() int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := startIn(ctx, os.Getenv(helperDirEnv), Options{Node: true})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	if err := runPausePod(ctx, c); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("ready")
	switch os.Getenv(helperEnv) {
	case "panic":
		panic("a test panics while its cluster runs")
	default:
		time.Sleep(10 * time.Minute) // until the test interrupts it
	}
	return 0
}

// runPausePod starts a long-running pod, so teardown has a sandbox, a
// container, a network namespace and a veth to clean up.
func runPausePod(ctx context.Context, c *Cluster) error {
	pods := c.Client().CoreV1().Pods("default")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sleeper"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "sleeper", Image: PauseImage, ImagePullPolicy: corev1.PullNever,
		}}},
	}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return err
	}
	for {
		p, err := pods.Get(ctx, "sleeper", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase == corev1.PodRunning {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pod sleeper is %s: %w", p.Status.Phase, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// needNodeBinaries skips the test, or fails it under CI, when a cluster with
// a node lacks a program here, without starting or asking for the shared
// cluster (these tests start their own).
func needNodeBinaries(t *testing.T) {
	t.Helper()
	if _, err := resolveBinaries(Options{Node: true}); err != nil {
		testenv.Missing(t, err.Error())
	}
}

// tempClusterDir makes a harness folder where stale sweeps look for them,
// and sweeps it when the test ends in case the test itself failed midway.
func tempClusterDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sweep(dir, false) })
	return dir
}

// assertNothingLeft checks that no process, mount, interface or file of the
// harness in dir remains.
func assertNothingLeft(t *testing.T, dir, bridge string) {
	t.Helper()
	for _, l := range Leftovers(Info{Dir: dir, Bridge: bridge}) {
		t.Errorf("left behind: %s", l)
	}
}

func readBridge(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "bridge"))
	return strings.TrimSpace(string(b))
}

func TestCancelledStartLeavesNothing(t *testing.T) {
	needNodeBinaries(t)
	dir := tempClusterDir(t)
	ctx, cancel := context.WithCancel(startCtx(t))
	var bridge string
	_, err := startIn(ctx, dir, Options{Node: true, Progress: func(msg string) {
		if strings.HasPrefix(msg, "starting kubelet") {
			bridge = readBridge(dir)
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("start returned %v, want context.Canceled", err)
	}
	if bridge == "" {
		t.Fatal("the start was not cancelled at the kubelet step")
	}
	assertNothingLeft(t, dir, bridge)
}

// When the process that started a cluster dies (a panicking test, Ctrl-C),
// its supervisor tears everything down by itself.
func TestTeardownWhenOwnerDies(t *testing.T) {
	needNodeBinaries(t)
	for _, mode := range []string{"panic", "interrupt"} {
		t.Run(mode, func(t *testing.T) {
			dir := tempClusterDir(t)
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperDirEnv+"="+dir)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ready := make(chan string, 1)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					if line := sc.Text(); line == "ready" || strings.HasPrefix(line, "error:") {
						ready <- line
						return
					}
				}
				ready <- "helper exited"
			}()
			select {
			case line := <-ready:
				if line != "ready" {
					_ = cmd.Process.Kill()
					t.Fatalf("helper: %s", line)
				}
			case <-time.After(3 * time.Minute):
				_ = cmd.Process.Kill()
				t.Fatal("helper did not start its cluster within 3 minutes")
			}
			bridge := readBridge(dir)
			if mode == "interrupt" {
				_ = cmd.Process.Signal(os.Interrupt)
			}
			if err := cmd.Wait(); err == nil {
				t.Fatalf("helper exited cleanly; want it to die by %s", mode)
			}
			waitRemoved(t, dir, 2*time.Minute)
			assertNothingLeft(t, dir, bridge)
		})
	}
}

// A supervisor killed outright cannot clean up; its components die with it
// (parent-death signal) and the next harness start sweeps the rest.
func TestKilledSupervisorIsSweptByNextStart(t *testing.T) {
	needNodeBinaries(t)
	dir := tempClusterDir(t)
	c, err := startIn(startCtx(t), dir, Options{Node: true})
	if err != nil {
		t.Fatal(err)
	}
	bridge := readBridge(dir)
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	if _, err := os.Stat(filepath.Join(dir, ownerFile)); err != nil {
		t.Fatalf("a killed supervisor should leave its folder for the sweep: %v", err)
	}
	sweepStale()
	assertNothingLeft(t, dir, bridge)
}

func waitRemoved(t *testing.T, dir string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not removed within %s", dir, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
