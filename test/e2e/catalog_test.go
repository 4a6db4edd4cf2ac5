package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/catalog"
	"github.com/kix-project/kix/test/cluster"
	"github.com/kix-project/kix/test/fixture"
)

// kix catalog publish keeps the cluster's BuildingBlocks equal to the file:
// a block that leaves it is deleted, other catalogues are left alone.
func TestCatalogPublishFollowsTheFile(t *testing.T) {
	c := kube.Get(t)
	dir := t.TempDir()
	block := func(name, version string) string {
		return name + ` = { version = "` + version + `"; description = "` + name + `"; manifests = builtins.toFile "` + name + `.json" (builtins.toJSON [ ]); };`
	}
	two, one, other := filepath.Join(dir, "two.nix"), filepath.Join(dir, "one.nix"), filepath.Join(dir, "other.nix")
	must(t, writeFile(two, "{ "+block("alpha", "1")+" "+block("beta", "2")+" }"))
	must(t, writeFile(one, "{ "+block("alpha", "1")+" }"))
	must(t, writeFile(other, "{ "+block("gamma", "3")+" }"))
	publish := func(file, name string) changeSet {
		out := runKix(t, "catalog", "publish", "-f", file, "--catalog", name, "--kubeconfig", c.Info.Kubeconfig, "-n", "default", "-o", "json")
		var cs changeSet
		must(t, json.Unmarshal([]byte(out), &cs))
		return cs
	}
	cl := kubeClient(t, c)
	blocks := func() []string {
		var list v1alpha1.BuildingBlockList
		must(t, cl.List(context.Background(), &list, client.HasLabels{catalog.LabelCatalog}))
		var names []string
		for _, b := range list.Items {
			if cat := b.Labels[catalog.LabelCatalog]; cat == "e2e-shop" || cat == "e2e-other" {
				names = append(names, b.Name)
			}
		}
		return names
	}
	t.Cleanup(func() {
		for _, name := range []string{"e2e-shop", "e2e-other"} {
			empty := filepath.Join(dir, "empty.nix")
			must(t, writeFile(empty, "{ }"))
			runKix(t, "catalog", "publish", "-f", empty, "--catalog", name, "--allow-empty", "--kubeconfig", c.Info.Kubeconfig, "-n", "default")
		}
	})

	// Before kix is installed, publishing says what to install.
	removeCRDs(t, c)
	_, stderr, code := kixCode(t, "catalog", "publish", "-f", two, "--catalog", "e2e-shop", "--kubeconfig", c.Info.Kubeconfig, "-n", "default")
	if code != 1 || !strings.Contains(stderr, "BuildingBlock/alpha-1: the cluster has no kind BuildingBlock") || !strings.Contains(stderr, "kix apply -f config/crd") {
		t.Errorf("publishing to a cluster without kix: exit %d, %s", code, stderr)
	}
	installCRDs(t, c)

	if cs := publish(two, "e2e-shop"); cs.actions()["BuildingBlock/alpha-1"] != "created" || cs.actions()["BuildingBlock/beta-2"] != "created" {
		t.Errorf("first publish: %v", cs.actions())
	}
	publish(other, "e2e-other")
	if got := blocks(); !slices.Equal(got, []string{"alpha-1", "beta-2", "gamma-3"}) {
		t.Fatalf("blocks %v", got)
	}
	if cs := publish(one, "e2e-shop"); cs.actions()["BuildingBlock/beta-2"] != "pruned" || cs.actions()["BuildingBlock/alpha-1"] != "unchanged" {
		t.Errorf("second publish: %v", cs.actions())
	}
	if got := blocks(); !slices.Equal(got, []string{"alpha-1", "gamma-3"}) {
		t.Errorf("blocks after beta left the file: %v", got)
	}
	// A file that is not a catalogue is refused, naming the problem.
	bad := filepath.Join(dir, "bad.nix")
	must(t, writeFile(bad, `{ delta = { description = "no version"; manifests = builtins.toFile "d.json" "[]"; }; }`))
	_, stderr, code = kixCode(t, "catalog", "publish", "-f", bad, "--catalog", "e2e-shop", "--kubeconfig", c.Info.Kubeconfig, "-n", "default")
	if code != 1 || !strings.Contains(stderr, "delta") {
		t.Errorf("a block without a version: exit %d, %s", code, stderr)
	}
	if got := blocks(); !slices.Equal(got, []string{"alpha-1", "gamma-3"}) {
		t.Errorf("blocks after a refused publish: %v", got)
	}
}

var kixCRDs = []string{"buildingblocks.kix.dev", "installations.kix.dev", "niximages.kix.dev"}

// installCRDs applies config/crd (with no inventory: a later kix apply -f
// deploy takes them into its own).
// installCRDs applies kix's CRDs as members of the set kix's own
// deployment is applied as (see TestKixDeploysKix), which may hold them
// already.
func installCRDs(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	runKix(t, "apply", "-f", filepath.Join(fixture.Root(), "config", "crd"), "--kubeconfig", c.Info.Kubeconfig, "--wait",
		"--inventory", "kix", "--inventory-namespace", "default")
}

// removeCRDs deletes kix's CRDs, if a test before installed them.
func removeCRDs(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	crds, err := apiextensionsclient.NewForConfig(c.RESTConfig())
	must(t, err)
	ctx := context.Background()
	for _, name := range kixCRDs {
		if err := crds.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	waitUntil(t, time.Minute, "kix's CRDs deleted", func() bool {
		for _, name := range kixCRDs {
			if _, err := crds.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false
			}
		}
		return true
	})
}
