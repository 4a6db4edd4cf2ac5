package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kix-project/kix/test/cluster"
)

const (
	benchNamespaces = 10
	// Per namespace: half ConfigMaps, half Deployments; 1,000 in all.
	benchPerNamespace = 100
	// First applies of each tool, each on objects of its own.
	firstApplyRounds = 3
)

// benchDeploy compares kix apply with kubectl apply --server-side on the
// same API server and the same 1,000 objects (ConfigMaps and Deployments
// across 10 namespaces, each tool in namespaces of its own): the first
// apply (the median of firstApplyRounds, the tools taking turns), a no-op
// re-apply, and kix's prune of 500 of them.
func benchDeploy(ctx context.Context, cfg benchConfig) error {
	c, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		return err
	}
	defer c.Stop()
	work, err := os.MkdirTemp("", "kix-bench-deploy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	kubectl := filepath.Join(cluster.KubeBinDir(), "kubectl")

	write := func(prefix string, perNamespace int) (string, error) {
		path := filepath.Join(work, fmt.Sprintf("%s-%d.yaml", prefix, perNamespace))
		return path, os.WriteFile(path, []byte(benchObjects(prefix, perNamespace)), 0o644)
	}
	kube := []string{"--kubeconfig", c.Info.Kubeconfig}
	// Round i applies each tool's objects anew, in namespaces (and, for
	// kix, an inventory) of its own; the last round's are applied again
	// and then pruned by half.
	kubectlApply := func(round int, perNamespace int) ([]string, error) {
		f, err := write(fmt.Sprint("kubectl", round), perNamespace)
		return append([]string{kubectl, "apply", "--server-side", "-f", f}, kube...), err
	}
	kixApply := func(round int, perNamespace int) ([]string, error) {
		f, err := write(fmt.Sprint("kix", round), perNamespace)
		return append([]string{cfg.kix, "apply", "--inventory", fmt.Sprint("bench", round), "--prune", "-f", f}, kube...), err
	}

	// Each run starts on a cluster at rest: the controller manager has
	// caught up with the Deployments of the run before (creating their
	// ReplicaSets), so no run pays for another's aftermath.
	timed := func(argv []string, err error) (time.Duration, error) {
		if err != nil {
			return 0, err
		}
		if err := settle(ctx, c.Client()); err != nil {
			return 0, err
		}
		start := time.Now()
		_, err = run(ctx, argv...)
		return time.Since(start), err
	}
	var first [2][]time.Duration
	for round := range firstApplyRounds {
		d, err := timed(kubectlApply(round, benchPerNamespace))
		if err != nil {
			return err
		}
		first[1] = append(first[1], d)
		if d, err = timed(kixApply(round, benchPerNamespace)); err != nil {
			return err
		}
		first[0] = append(first[0], d)
	}
	kixFirst, kubectlFirst := median(first[0]), median(first[1])
	last := firstApplyRounds - 1
	kubectlAgain, err := timed(kubectlApply(last, benchPerNamespace))
	if err != nil {
		return err
	}
	kixAgain, err := timed(kixApply(last, benchPerNamespace))
	if err != nil {
		return err
	}
	kixPrune, err := timed(kixApply(last, benchPerNamespace/2))
	if err != nil {
		return err
	}

	objects := benchNamespaces * benchPerNamespace
	fmt.Printf("\ndeploy: %d objects (ConfigMaps and Deployments) in %d namespaces, one API server (%s)\n\n", objects, benchNamespaces, cluster.KubeVersion)
	fmt.Printf("  %-30s %-10s %-34s %s\n", "", "kix", "kubectl apply --server-side", "speed-up (goal)")
	firstRatio, againRatio := kubectlFirst.Seconds()/kixFirst.Seconds(), kubectlAgain.Seconds()/kixAgain.Seconds()
	fmt.Printf("  %-30s %-10s %-34s %.1fx (≥ 3x)%s\n", fmt.Sprintf("first apply, median of %d", firstApplyRounds), secs(kixFirst), secs(kubectlFirst), firstRatio, missed(firstRatio >= 3))
	fmt.Printf("  %-30s %-10s %-34s %.1fx (≥ 10x)%s\n", "no-op re-apply", secs(kixAgain), secs(kubectlAgain), againRatio, missed(againRatio >= 10))
	fmt.Printf("  %-30s %-10s %-34s %s\n", fmt.Sprintf("prune of %d objects", objects/2), secs(kixPrune), "n/a (one namespace per ApplySet)", "")
	fmt.Printf("\n  first apply, each round: kix %s; kubectl %s\n", rounds(first[0]), rounds(first[1]))
	return nil
}

// rounds lists the times of a contender's rounds, in order.
func rounds(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.2f", d.Seconds())
	}
	return strings.Join(parts, ", ") + " s"
}

// benchObjects writes the namespaces and objects of one tool's share.
func benchObjects(prefix string, perNamespace int) string {
	var b strings.Builder
	for n := 0; n < benchNamespaces; n++ {
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s-%d}\n---\n", prefix, n)
	}
	for n := 0; n < benchNamespaces; n++ {
		ns := fmt.Sprintf("%s-%d", prefix, n)
		for i := 0; i < perNamespace/2; i++ {
			fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-%d, namespace: %s}\ndata: {index: \"%d\", text: hello}\n---\n", i, ns, i)
			fmt.Fprintf(&b, `apiVersion: apps/v1
kind: Deployment
metadata: {name: app-%d, namespace: %s}
spec:
  replicas: 0
  selector: {matchLabels: {app: app-%d}}
  template:
    metadata: {labels: {app: app-%d}}
    spec: {containers: [{name: app, image: nix.internal/00000000000000000000000000000000-app, args: ["--index", "%d"]}]}
---
`, i, ns, i, i, i)
		}
	}
	return b.String()
}

// settle waits until the controllers have seen every Deployment and
// ReplicaSet as it is now (status.observedGeneration caught up), and every
// Deployment has its ReplicaSet.
func settle(ctx context.Context, client kubernetes.Interface) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for {
		deps, err := client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("waiting for the cluster to settle: %w", err)
		}
		sets, err := client.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("waiting for the cluster to settle: %w", err)
		}
		busy := len(sets.Items) < len(deps.Items)
		for _, d := range deps.Items {
			busy = busy || d.Status.ObservedGeneration < d.Generation
		}
		for _, rs := range sets.Items {
			busy = busy || rs.Status.ObservedGeneration < rs.Generation
		}
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster did not settle: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
