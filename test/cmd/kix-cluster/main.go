// Command kix-cluster starts the test harness's local Kubernetes cluster and
// keeps it running until interrupted, for trying kix by hand:
//
//	go run ./test/cmd/kix-cluster -node
//	export KUBECONFIG=...   (printed once the cluster is ready)
//
// Ctrl-C tears everything down.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kix-project/kix/test/cluster"
)

func main() {
	node := flag.Bool("node", true, "also start containerd and a kubelet")
	keep := flag.Bool("keep", false, "keep the cluster's folder (logs, configs) after stopping")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{
		Node:    *node,
		KeepDir: *keep,
		Progress: func(msg string) {
			fmt.Fprintf(os.Stderr, "cluster: %s\n", msg)
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "cluster: ready in %s\n", time.Since(start).Round(100*time.Millisecond))
	fmt.Printf("export KUBECONFIG=%s\n", c.Info.Kubeconfig)
	if c.Info.RegistryConfigDir != "" {
		fmt.Printf("# containerd: %s (registry hosts: %s)\n", c.Info.ContainerdAddress, c.Info.RegistryConfigDir)
	}
	select {
	case <-ctx.Done():
	case <-c.Done():
		fmt.Fprintln(os.Stderr, "cluster: the supervisor exited")
	}
	fmt.Fprintln(os.Stderr, "cluster: stopping")
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
