// Command demo runs kix's main job end to end on this machine: it builds
// the fixtures with Nix, starts a local Kubernetes cluster with a real node
// and `kix registry` on the local store, maps nix.internal to the registry,
// and plays four scenes (image.go, deploy.go, csi.go, controller.go): a pod
// whose image is a store path; an app applied, changed, diffed and pruned
// with kix apply; a pod that mounts its closure from kix csi; kix
// controller building a NixImage a pod runs, and installing a catalogue
// block it keeps in sync. Then it tears everything down and checks nothing
// is left. `make demo` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kix-project/kix/test/cluster"
	"github.com/kix-project/kix/test/fixture"
)

func main() {
	kixBin := flag.String("kix", filepath.Join(fixture.Root(), "bin", "kix"), "the kix binary to demonstrate")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdout, *kixBin)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func step(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "\n==> "+format+"\n", args...)
}

func run(ctx context.Context, w io.Writer, kixBin string) (err error) {
	kix := &kixRunner{bin: kixBin, w: w}
	step(w, "Building the fixture hello with Nix (test/nix)")
	hello, err := fixture.BuildAttr(ctx, "hello")
	if err != nil {
		return err
	}
	closure, err := fixture.ClosureOf(ctx, hello)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "    %s\n    closure: %d store paths\n", hello, len(closure))
	for _, p := range closure {
		fmt.Fprintf(w, "      %s\n", p)
	}

	step(w, "Starting a local cluster: etcd, kube-apiserver %s, controller-manager, scheduler, containerd and a kubelet", cluster.KubeVersion)
	start := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{
		Node:     true,
		Progress: func(msg string) { fmt.Fprintf(w, "    %s\n", msg) },
	})
	if err != nil {
		return err
	}
	defer func() {
		step(w, "Tearing down")
		kix.stopAll()
		if stopErr := c.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
		if left := cluster.Leftovers(c.Info); len(left) > 0 {
			if err == nil {
				err = fmt.Errorf("teardown left behind:\n  %s", strings.Join(left, "\n  "))
			}
			return
		}
		fmt.Fprintln(w, "    stopped; no process, mount, network interface or file of the cluster is left")
	}()
	fmt.Fprintf(w, "    ready in %s (kubeconfig: %s)\n", time.Since(start).Round(100*time.Millisecond), c.Info.Kubeconfig)

	step(w, "Serving the local Nix store as an OCI registry: kix registry")
	addr, err := kix.startRegistry(ctx, c.Info.Dir)
	if err != nil {
		return err
	}
	if err := c.MirrorRegistry("nix.internal", "http://"+addr); err != nil {
		return err
	}
	fmt.Fprintf(w, "    containerd maps nix.internal to it (%s/nix.internal/hosts.toml):\n", c.Info.RegistryConfigDir)
	for _, line := range strings.Split(strings.TrimSpace(cluster.HostsTOML("http://"+addr)), "\n") {
		fmt.Fprintln(w, strings.TrimRight("      "+line, " "))
	}

	for _, scene := range []func(context.Context, io.Writer, *kixRunner, *cluster.Cluster, string) error{
		imageScene, deployScene, csiScene, controllerScene,
	} {
		if err := scene(ctx, w, kix, c, hello); err != nil {
			return err
		}
	}
	return nil
}

func waitForCompletion(ctx context.Context, c *cluster.Cluster, name string) (corev1.PodPhase, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		pod, err := c.Client().CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		if p := pod.Status.Phase; p == corev1.PodSucceeded || p == corev1.PodFailed {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("pod %s still %s: %w", name, pod.Status.Phase, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
