package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kix-project/kix/test/cluster"
)

const (
	benchNamespaces = 10
	// Per namespace: half ConfigMaps, half Deployments; 1,000 in all.
	benchPerNamespace = 100
	// First applies of each tool, each on objects of its own.
	firstApplyRounds = 5
)

// benchDeploy compares kix apply with kubectl apply --server-side on the
// same API server and the same 1,000 objects (ConfigMaps and Deployments
// across 10 namespaces, each tool in namespaces of its own): the first
// apply (the median of firstApplyRounds), a no-op re-apply, and kix's prune
// of 500 of them.
//
// Every timed run starts on the same cluster: the objects of a first apply
// are deleted again (their namespaces, waited for until gone) before the
// next run, so no run works against a larger store and heap than another,
// and the controller manager has caught up with what came before. The
// tools take turns at going first.
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
	kube := []string{"--kubeconfig", c.Info.Kubeconfig}

	// A tool's share is named by prefix: its namespaces and, for kix,
	// its inventory.
	type tool func(prefix string, perNamespace int) ([]string, error)
	write := func(prefix string, perNamespace int) (string, error) {
		path := filepath.Join(work, fmt.Sprintf("%s-%d.yaml", prefix, perNamespace))
		return path, os.WriteFile(path, []byte(benchObjects(prefix, perNamespace)), 0o644)
	}
	kubectlApply := func(prefix string, perNamespace int) ([]string, error) {
		f, err := write(prefix, perNamespace)
		return append([]string{kubectl, "apply", "--server-side", "-f", f}, kube...), err
	}
	kixApply := func(prefix string, perNamespace int) ([]string, error) {
		f, err := write(prefix, perNamespace)
		return append([]string{cfg.kix, "apply", "--inventory", prefix, "--prune", "-f", f}, kube...), err
	}
	timed := func(t tool, prefix string, perNamespace int) (time.Duration, error) {
		argv, err := t(prefix, perNamespace)
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

	tools := [2]tool{kixApply, kubectlApply}
	names := [2]string{"kix", "kubectl"}
	var first [2][]time.Duration
	for round := range firstApplyRounds {
		for turn := range 2 {
			i := (round + turn) % 2
			prefix := fmt.Sprint(names[i], round)
			d, err := timed(tools[i], prefix, benchPerNamespace)
			if err != nil {
				return err
			}
			first[i] = append(first[i], d)
			if err := removeShare(ctx, c.Client(), prefix); err != nil {
				return err
			}
		}
	}
	kixFirst, kubectlFirst := median(first[0]), median(first[1])

	for i, t := range tools {
		if _, err := timed(t, names[i]+"-again", benchPerNamespace); err != nil {
			return err
		}
	}
	kubectlAgain, err := timed(kubectlApply, "kubectl-again", benchPerNamespace)
	if err != nil {
		return err
	}
	kixAgain, err := timed(kixApply, "kix-again", benchPerNamespace)
	if err != nil {
		return err
	}
	kixPrune, err := timed(kixApply, "kix-again", benchPerNamespace/2)
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

// removeShare deletes a tool's namespaces, and kix's inventory of that
// name, and waits until the namespaces are gone.
func removeShare(ctx context.Context, client kubernetes.Interface, prefix string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	err := client.CoreV1().ConfigMaps(metav1.NamespaceDefault).Delete(ctx, prefix, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	for n := range benchNamespaces {
		err := client.CoreV1().Namespaces().Delete(ctx, fmt.Sprintf("%s-%d", prefix, n), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	for {
		left := 0
		for n := range benchNamespaces {
			_, err := client.CoreV1().Namespaces().Get(ctx, fmt.Sprintf("%s-%d", prefix, n), metav1.GetOptions{})
			switch {
			case err == nil:
				left++
			case !apierrors.IsNotFound(err):
				return err
			}
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the namespaces of %s to go: %w", prefix, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
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
