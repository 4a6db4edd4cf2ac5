package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kix-project/kix/test/cluster"
	"github.com/kix-project/kix/test/fixture"
)

// deployScene is ux.md's first journey: an app written in Nix is diffed,
// applied with --prune --wait (its image is a store path, pulled from kix
// registry), serves its page, is changed, diffed again, and applied again,
// pruning what left the set.
func deployScene(ctx context.Context, w io.Writer, kix *kixRunner, c *cluster.Cluster, _ string) error {
	app := filepath.Join(fixture.Dir(), "deploy", "shop.nix")
	source, err := os.ReadFile(app)
	if err != nil {
		return err
	}
	step(w, "The app, written in Nix with kix's library (test/nix/deploy/shop.nix)")
	for _, line := range strings.Split(strings.TrimRight(string(source), "\n"), "\n") {
		fmt.Fprintln(w, strings.TrimRight("    "+line, " "))
	}
	args := []string{"--kubeconfig", c.Info.Kubeconfig, "-f", app, "--inventory", "shop"}
	shortArgs := []string{"-f", "shop.nix", "--inventory", "shop"}

	step(w, "Review: what would change")
	if _, err := kix.show(ctx, args, shortArgs, "diff"); err != nil {
		return err
	}
	step(w, "Deploy: applied in stages, waited for, pruned")
	if _, err := kix.show(ctx, args, shortArgs, "apply", "--prune", "--wait", "--timeout", "2m"); err != nil {
		return err
	}
	page, err := fetchPage(ctx, c, "shop")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "    GET http://<web pod>:8080/ -> %s\n", strings.TrimSpace(page))
	step(w, "kubectl logs -n shop deploy/web (busybox httpd from the closure)")
	if err := showLogs(ctx, w, c, "shop", "app=web"); err != nil {
		return err
	}

	change := []string{"--arg", "version=2", "--arg", "withWorker=false"}
	step(w, "Changing the expression (version 2, no worker): the diff, then the apply")
	if _, err := kix.show(ctx, append(args, change...), append(shortArgs, change...), "diff"); err != nil {
		return err
	}
	if _, err := kix.show(ctx, append(args, change...), append(shortArgs, change...), "apply", "--prune", "--wait", "--timeout", "2m"); err != nil {
		return err
	}
	step(w, "Nothing left to change")
	_, err = kix.show(ctx, append(args, change...), append(shortArgs, change...), "diff")
	return err
}

// fetchPage gets the web pod's page over the pod network.
func fetchPage(ctx context.Context, c *cluster.Cluster, ns string) (string, error) {
	var last error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		pods, err := c.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return "", err
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
				continue
			}
			resp, err := http.Get("http://" + p.Status.PodIP + ":8080/")
			if err != nil {
				last = err
				continue
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(body), err
		}
	}
	return "", fmt.Errorf("the web pod did not answer: %v", last)
}

func showLogs(ctx context.Context, w io.Writer, c *cluster.Cluster, ns, selector string) error {
	pods, err := c.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil || len(pods.Items) == 0 {
		return fmt.Errorf("no pods %s in %s: %v", selector, ns, err)
	}
	logs, err := c.Client().CoreV1().Pods(ns).GetLogs(pods.Items[0].Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(logs)), "\n") {
		fmt.Fprintf(w, "    %s\n", line)
	}
	return nil
}
