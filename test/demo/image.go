package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kix-project/kix/test/cluster"
)

// imageScene: a pod names its image by hello's store path; containerd pulls
// it from kix registry through the nix.internal mirror.
func imageScene(ctx context.Context, w io.Writer, kix *kixRunner, c *cluster.Cluster, hello string) error {
	step(w, "kix image ref %s", hello)
	ref, err := kix.output(ctx, "image", "ref", hello)
	if err != nil {
		return err
	}
	ref = strings.TrimSpace(ref)
	fmt.Fprintf(w, "    %s\n", ref)

	step(w, "Running a pod whose image is %s", ref)
	pods := c.Client().CoreV1().Pods("default")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "hello", Image: ref}},
		},
	}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return err
	}
	phase, err := waitForCompletion(ctx, c, "hello")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "    pod/hello %s: containerd pulled the image from kix registry, built from the closure\n", phase)

	step(w, "kubectl logs hello")
	logs, err := pods.GetLogs("hello", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		return err
	}
	fmt.Fprint(w, string(logs))
	if phase != corev1.PodSucceeded {
		return fmt.Errorf("pod hello %s", phase)
	}
	return nil
}
