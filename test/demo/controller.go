package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/controller"
	"github.com/kix-project/kix/test/cluster"
	"github.com/kix-project/kix/test/fixture"
)

// controllerScene is ux.md's third and fourth journeys with kix controller
// (here on this machine, beside kix registry): a NixImage is built on
// demand and a pod runs it; a provider publishes a catalogue, a tenant
// installs a block with values, a hand edit is reverted, a delete cleans
// up.
func controllerScene(ctx context.Context, w io.Writer, kix *kixRunner, c *cluster.Cluster, _ string) error {
	kubeconfig := []string{"--kubeconfig", c.Info.Kubeconfig}
	step(w, "kix in the cluster: the CRDs controller-gen writes (config/crd), and kix controller")
	if _, err := kix.show(ctx, append([]string{"-f", filepath.Join(fixture.Root(), "config", "crd"), "--wait"}, kubeconfig...),
		[]string{"-f", "config/crd", "--wait"}, "apply"); err != nil {
		return err
	}
	health, err := freeLoopback()
	if err != nil {
		return err
	}
	err = kix.startServer(ctx, c.Info.Dir, "kix-controller", "http://"+health+"/readyz", append([]string{"controller",
		"--package-set", fixture.Dir(), "--registry", "nix.internal", "--resync", "5s",
		"--metrics-bind-address", "0", "--health-probe-bind-address", health,
		"--cache-dir", filepath.Join(c.Info.Dir, "kix-controller")}, kubeconfig...)...)
	if err != nil {
		return err
	}
	cl, err := client.New(c.RESTConfig(), client.Options{Scheme: controller.Scheme()})
	if err != nil {
		return err
	}
	if err := nixImageScene(ctx, w, c, cl); err != nil {
		return err
	}
	return installationScene(ctx, w, kix, c, cl, kubeconfig)
}

func nixImageScene(ctx context.Context, w io.Writer, c *cluster.Cluster, cl client.Client) error {
	step(w, "kubectl apply -f hello-image.yaml: a NixImage of the package set's hello")
	img := &v1alpha1.NixImage{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "NixImage"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hello"},
		Spec:       v1alpha1.NixImageSpec{Contents: []string{"hello"}, Tag: "v1"},
	}
	printYAML(w, img)
	if err := cl.Create(ctx, img); err != nil {
		return err
	}
	step(w, "kubectl get niximages --watch")
	var header []string
	var rows [][]string
	seen := ""
	err := waitFor(ctx, "the NixImage to be built", func() bool {
		if err := cl.Get(ctx, client.ObjectKeyFromObject(img), img); err != nil {
			return false
		}
		if phase := string(img.Status.Phase); phase != seen {
			seen = phase
			if h, r, err := tableRows(ctx, c, "/apis/kix.dev/v1alpha1/namespaces/default/niximages"); err == nil {
				header, rows = h, append(rows, r...)
			}
		}
		return img.Status.Phase == v1alpha1.NixImageBuilt || img.Status.Phase == v1alpha1.NixImageFailed
	})
	if err != nil {
		return err
	}
	printRows(w, header, rows)
	if img.Status.Phase != v1alpha1.NixImageBuilt {
		return fmt.Errorf("NixImage hello: %s", img.Status.Message)
	}
	step(w, "A pod runs status.image, pulled from kix registry by digest")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hello-niximage"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "hello", Image: img.Status.Image}},
		},
	}
	if err := cl.Create(ctx, pod); err != nil {
		return err
	}
	phase, err := waitForCompletion(ctx, c, pod.Name)
	if err != nil {
		return err
	}
	logs, err := c.Client().CoreV1().Pods("default").GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "    pod/%s %s; kubectl logs: %s", pod.Name, phase, logs)
	if phase != corev1.PodSucceeded {
		return fmt.Errorf("pod %s %s", pod.Name, phase)
	}
	return nil
}

func installationScene(ctx context.Context, w io.Writer, kix *kixRunner, c *cluster.Cluster, cl client.Client, kubeconfig []string) error {
	step(w, "Provider: the catalogue (test/nix/catalog.nix) becomes BuildingBlocks")
	catalog := filepath.Join(fixture.Dir(), "catalog.nix")
	if _, err := kix.show(ctx, append([]string{"-f", catalog}, kubeconfig...), []string{"-f", "catalog.nix"}, "catalog", "publish"); err != nil {
		return err
	}
	step(w, "Tenant: kubectl get buildingblocks")
	if err := printTable(ctx, w, c, "/apis/kix.dev/v1alpha1/buildingblocks"); err != nil {
		return err
	}

	step(w, "Tenant: kubectl create -f install.yaml: hello-web 1.0 with values")
	inst := &v1alpha1.Installation{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Installation"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: v1alpha1.InstallationSpec{Block: "hello-web", Version: "1.0",
			Values: &runtime.RawExtension{Raw: []byte(`{"greeting":"Hello from an Installation"}`)}},
	}
	printYAML(w, inst)
	if err := cl.Create(ctx, inst); err != nil {
		return err
	}
	if err := waitFor(ctx, "the Installation to be applied", func() bool {
		if err := cl.Get(ctx, client.ObjectKeyFromObject(inst), inst); err != nil {
			return false
		}
		cond := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
		return cond != nil && cond.Status == metav1.ConditionTrue
	}); err != nil {
		return err
	}
	if err := printTable(ctx, w, c, "/apis/kix.dev/v1alpha1/namespaces/default/installations"); err != nil {
		return err
	}
	fmt.Fprintf(w, "    built %s for the values: the tenant's own BuildingBlock %s\n", inst.Status.StorePath, inst.Status.BuildingBlock)
	greeting := func() string {
		var cm corev1.ConfigMap
		if err := cl.Get(ctx, client.ObjectKey{Namespace: "default", Name: "greeting"}, &cm); err != nil {
			return err.Error()
		}
		return cm.Data["greeting"]
	}
	fmt.Fprintf(w, "    configmap/greeting: %q\n", greeting())

	step(w, "kubectl edit configmap greeting: a hand edit, reverted by the drift reconciler")
	var cm corev1.ConfigMap
	if err := cl.Get(ctx, client.ObjectKey{Namespace: "default", Name: "greeting"}, &cm); err != nil {
		return err
	}
	cm.Data["greeting"] = "edited by hand"
	if err := cl.Update(ctx, &cm); err != nil {
		return err
	}
	edited := time.Now()
	fmt.Fprintf(w, "    configmap/greeting: %q\n", "edited by hand")
	if err := waitFor(ctx, "the edit to be reverted", func() bool { return greeting() == "Hello from an Installation" }); err != nil {
		return err
	}
	fmt.Fprintf(w, "    configmap/greeting: %q again, %s later\n", greeting(), time.Since(edited).Round(100*time.Millisecond))

	step(w, "kubectl delete installation web: its objects, its block and the finalizer go")
	if err := cl.Delete(ctx, inst); err != nil {
		return err
	}
	if err := waitFor(ctx, "the Installation to be deleted", func() bool {
		return apierrors.IsNotFound(cl.Get(ctx, client.ObjectKeyFromObject(inst), inst))
	}); err != nil {
		return err
	}
	var left []string
	for _, name := range []string{"greeting", "kix-installation-web"} {
		if err := cl.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
			left = append(left, "configmap/"+name)
		}
	}
	var blocks v1alpha1.BuildingBlockList
	if err := cl.List(ctx, &blocks); err != nil {
		return err
	}
	for _, b := range blocks.Items {
		if b.Spec.Owner != nil {
			left = append(left, "buildingblock/"+b.Name)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("the delete left %s", strings.Join(left, ", "))
	}
	fmt.Fprintln(w, "    installation.kix.dev/web deleted; configmap/greeting, deployment/web and the tenant's block are gone")
	return nil
}

// printTable prints a list as kubectl get does: the API server's Table of
// it, with the CRD's printer columns.
func printTable(ctx context.Context, w io.Writer, c *cluster.Cluster, path string) error {
	header, rows, err := tableRows(ctx, c, path)
	if err != nil {
		return err
	}
	printRows(w, header, rows)
	return nil
}

// tableRows gets a list as the API server's Table: the column names and
// the rows, as kubectl get prints them.
func tableRows(ctx context.Context, c *cluster.Cluster, path string) ([]string, [][]string, error) {
	data, err := c.Client().Discovery().RESTClient().Get().AbsPath(path).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		return nil, nil, err
	}
	var table metav1.Table
	if err := json.Unmarshal(data, &table); err != nil {
		return nil, nil, err
	}
	var header []string
	for _, col := range table.ColumnDefinitions {
		if col.Priority == 0 {
			header = append(header, strings.ToUpper(col.Name))
		}
	}
	var rows [][]string
	for _, row := range table.Rows {
		var cells []string
		for i, cell := range row.Cells {
			if table.ColumnDefinitions[i].Priority != 0 {
				continue
			}
			if cell == nil {
				cell = "<none>"
			}
			cells = append(cells, fmt.Sprint(cell))
		}
		rows = append(rows, cells)
	}
	return header, rows, nil
}

func printRows(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "    "+strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, "    "+strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

// printYAML prints an object as the manifest a user would write.
func printYAML(w io.Writer, obj client.Object) {
	data, err := json.Marshal(obj)
	if err != nil {
		return
	}
	var m map[string]any
	if json.Unmarshal(data, &m) != nil {
		return
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	out, err := yaml.Marshal(m)
	if err != nil {
		return
	}
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Fprintln(w, "    "+line)
	}
}
