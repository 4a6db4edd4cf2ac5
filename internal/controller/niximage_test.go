package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/image"
	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/internal/registry"
	"github.com/kix-project/kix/test/fixture"
)

func newImage(ns, name string, contents ...string) *v1alpha1.NixImage {
	return &v1alpha1.NixImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.NixImageSpec{Contents: contents, Tag: "v1"},
	}
}

func waitPhase(t *testing.T, cl client.Client, ns, name string, want v1alpha1.NixImagePhase) *v1alpha1.NixImage {
	t.Helper()
	var img v1alpha1.NixImage
	eventually(t, 90*time.Second, fmt.Sprintf("NixImage %s/%s %s", ns, name, want), func() (bool, string) {
		if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &img); err != nil {
			return false, err.Error()
		}
		return img.Status.Phase == want && img.Status.ObservedGeneration == img.Generation, fmt.Sprintf("%s: %s", img.Status.Phase, img.Status.Message)
	})
	return &img
}

// eventReasons lists the reasons of the events about an object, oldest first.
func eventReasons(t *testing.T, ns, name string) []string {
	t.Helper()
	var list eventsv1.EventList
	if err := newClient(t).List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(list.Items, func(a, b eventsv1.Event) int { return a.EventTime.Compare(b.EventTime.Time) })
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}

func TestNixImageIsBuilt(t *testing.T) {
	cl, _ := startController(t)
	ns := kube.Get(t).Namespace(t)
	if err := cl.Create(context.Background(), newImage(ns, "hello", "hello")); err != nil {
		t.Fatal(err)
	}
	img := waitPhase(t, cl, ns, "hello", v1alpha1.NixImageBuilt)
	if c := readyCondition(img.Status.Conditions); c == nil || c.Status != metav1.ConditionTrue || c.Reason != ReasonBuilt {
		t.Errorf("Ready condition %+v", c)
	}
	// The image is what kix registry serves for the spec, by digest.
	cache, err := image.OpenBlobCache(t.TempDir(), image.DefaultCacheBytes)
	if err != nil {
		t.Fatal(err)
	}
	a, err := (&image.Builder{Store: nix.NewLocalStore(), Cache: cache}).Build(context.Background(), img.Status.StorePath)
	if err != nil {
		t.Fatal(err)
	}
	want := testRegistry + "/" + registry.Repository(img.Status.StorePath) + "@" + a.Manifest(false).Digest.String()
	if img.Status.Image != want {
		t.Errorf("status.image %s, want %s", img.Status.Image, want)
	}
	hello := fixture.Build(t, "hello")
	cf, _ := json.Marshal(a.Image.Roots)
	if !strings.Contains(string(cf), hello) {
		t.Errorf("the image's roots %s lack %s", cf, hello)
	}
	eventually(t, 10*time.Second, "events", func() (bool, string) {
		got := eventReasons(t, ns, "hello")
		return slices.Equal(got, []string{ReasonPending, ReasonBuilding, ReasonBuilt}), strings.Join(got, ",")
	})
}

func TestNixImageFailsAndRecovers(t *testing.T) {
	cl, _ := startController(t)
	ns := kube.Get(t).Namespace(t)
	if err := cl.Create(context.Background(), newImage(ns, "typo", "hello", "no-such-package")); err != nil {
		t.Fatal(err)
	}
	img := waitPhase(t, cl, ns, "typo", v1alpha1.NixImageFailed)
	if !strings.Contains(img.Status.Message, `"no-such-package"`) {
		t.Errorf("message %q does not name the missing package", img.Status.Message)
	}
	if c := readyCondition(img.Status.Conditions); c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonBuildFailed {
		t.Errorf("Ready condition %+v", c)
	}
	update(t, cl, img, func(i *v1alpha1.NixImage) { i.Spec.Contents = []string{"hello"} })
	img = waitPhase(t, cl, ns, "typo", v1alpha1.NixImageBuilt)
	if img.Status.Image == "" {
		t.Error("no image after the fix")
	}
}

// A package set the controller was not given is not built: building one
// runs its code with the controller's rights.
func TestPackageSetMustBeAllowed(t *testing.T) {
	cl, _ := startController(t)
	ns := kube.Get(t).Namespace(t)
	img := newImage(ns, "foreign", "hello")
	img.Spec.PackageSet = filepath.Join(t.TempDir(), "tenant.nix")
	if err := cl.Create(context.Background(), img); err != nil {
		t.Fatal(err)
	}
	img = waitPhase(t, cl, ns, "foreign", v1alpha1.NixImageFailed)
	if !strings.Contains(img.Status.Message, "not one the controller builds") || img.Status.StorePath != "" {
		t.Errorf("status %+v", img.Status)
	}
}

// kubectl get niximages shows the columns the CRD declares; the API's
// Table output is what kubectl prints.
func TestNixImagePrinterColumns(t *testing.T) {
	cl, _ := startController(t)
	ns := kube.Get(t).Namespace(t)
	if err := cl.Create(context.Background(), newImage(ns, "cols", "hello")); err != nil {
		t.Fatal(err)
	}
	img := waitPhase(t, cl, ns, "cols", v1alpha1.NixImageBuilt)
	table := getTable(t, "/apis/kix.dev/v1alpha1/namespaces/"+ns+"/niximages")
	var names []string
	for _, c := range table.ColumnDefinitions {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"Name", "Tag", "Status", "Image", "Age"}) {
		t.Errorf("columns %v", names)
	}
	if len(table.Rows) != 1 || fmt.Sprint(table.Rows[0].Cells[:4]) != fmt.Sprint([]any{"cols", "v1", "Built", img.Status.Image}) {
		t.Errorf("rows %v", table.Rows)
	}
}

// getTable gets a list as kubectl get does; params are name, value pairs.
func getTable(t *testing.T, path string, params ...string) *metav1.Table {
	t.Helper()
	c := kube.Get(t)
	req := c.Client().Discovery().RESTClient().Get().AbsPath(path)
	for i := 0; i+1 < len(params); i += 2 {
		req = req.Param(params[i], params[i+1])
	}
	data, err := req.SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(data, &table); err != nil {
		t.Fatal(err)
	}
	return &table
}

// A controller that stops in the middle of a build (killed, upgraded,
// leadership lost) leaves the image Building; the next one finishes it,
// once.
func TestRestartMidBuild(t *testing.T) {
	dir := t.TempDir()
	slowSet := filepath.Join(dir, "slow.nix")
	// A derivation no earlier run built: it takes seconds, every time.
	nonce := rand.String(8)
	content := fmt.Sprintf(`let f = import %s { }; in {
  slow = f.lib.mkDerivation {
    pname = "slow"; version = "1.0"; nonce = "%s";
    script = "sleep 4; mkdir -p $out/bin; echo 'echo slow' > $out/bin/slow; chmod +x $out/bin/slow";
  };
}`, fixture.Dir(), nonce)
	if err := os.WriteFile(slowSet, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	allowSlow := func(o *Options) { o.AllowedPackageSets = []string{slowSet} }
	cl, stop := startController(t, allowSlow)
	ns := kube.Get(t).Namespace(t)
	img := newImage(ns, "slow", "slow")
	img.Spec.PackageSet = slowSet
	if err := cl.Create(context.Background(), img); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, cl, ns, "slow", v1alpha1.NixImageBuilding)
	stop()
	// The restart must come in the middle of the build, or this tests
	// nothing.
	var stopped v1alpha1.NixImage
	if err := newClient(t).Get(context.Background(), client.ObjectKeyFromObject(img), &stopped); err != nil || stopped.Status.Phase != v1alpha1.NixImageBuilding {
		t.Fatalf("when the controller stopped: %s, %v", stopped.Status.Phase, err)
	}

	cl, _ = startController(t, allowSlow)
	done := waitPhase(t, cl, ns, "slow", v1alpha1.NixImageBuilt)
	if !strings.Contains(done.Status.StorePath, "-image-spec.json") {
		t.Errorf("store path %s", done.Status.StorePath)
	}
	eventually(t, 10*time.Second, "events", func() (bool, string) {
		got := eventReasons(t, ns, "slow")
		built := 0
		for _, r := range got {
			if r == ReasonBuilt {
				built++
			}
		}
		return built == 1 && got[0] == ReasonPending, strings.Join(got, ",")
	})
}

// A build Job that builds in the node's store runs on the controller's
// node, whose store the controller reads the result from.
func TestHostRootJobsRunOnTheControllersNode(t *testing.T) {
	c := kube.Get(t)
	cl, _ := startController(t, func(o *Options) {
		o.Builder = &JobBuilder{Logs: c.Client(), Image: "kix.local/kix:test", Command: []string{"kix"}, HostRoot: true, Node: "kix-test-node"}
	})
	ns := c.Namespace(t)
	ctx := context.Background()
	if err := cl.Create(ctx, newImage(ns, "pinned", "hello")); err != nil {
		t.Fatal(err)
	}
	var jobs batchv1.JobList
	eventually(t, 30*time.Second, "a build Job", func() (bool, string) {
		if err := newClient(t).List(ctx, &jobs, client.InNamespace(ns), client.MatchingLabels{labelNixImage: "pinned"}); err != nil {
			return false, err.Error()
		}
		return len(jobs.Items) == 1, fmt.Sprintf("%d Jobs", len(jobs.Items))
	})
	a := jobs.Items[0].Spec.Template.Spec.Affinity
	want := corev1.NodeSelectorRequirement{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"kix-test-node"}}
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil ||
		!cmp.Equal(a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchFields, []corev1.NodeSelectorRequirement{want}) {
		t.Errorf("the build Job's affinity %+v does not pin it to the controller's node", a)
	}
}

// A build Job stuck past its deadline (here: no node to run on) fails the
// image with the Job controller's reason, and frees its build slot; a pod
// evicted or preempted is not a build's failure.
func TestStuckBuildJobFailsAtItsDeadline(t *testing.T) {
	c := kube.Get(t)
	cl, _ := startController(t, func(o *Options) {
		o.MaxBuilds = 1
		o.Builder = &JobBuilder{Logs: c.Client(), Image: "kix.local/kix:test", Command: []string{"kix"}, Timeout: 2 * time.Second}
	})
	ns := c.Namespace(t)
	if err := cl.Create(context.Background(), newImage(ns, "stuck", "hello")); err != nil {
		t.Fatal(err)
	}
	img := waitPhase(t, cl, ns, "stuck", v1alpha1.NixImageFailed)
	if !strings.Contains(img.Status.Message, "DeadlineExceeded") {
		t.Errorf("message %q does not give the Job's reason", img.Status.Message)
	}
	var jobs batchv1.JobList
	if err := newClient(t).List(context.Background(), &jobs, client.InNamespace(ns), client.MatchingLabels{labelNixImage: "stuck"}); err != nil || len(jobs.Items) != 1 {
		t.Fatalf("%d Jobs, %v", len(jobs.Items), err)
	}
	rules := jobs.Items[0].Spec.PodFailurePolicy
	if rules == nil || len(rules.Rules) != 1 || rules.Rules[0].Action != batchv1.PodFailurePolicyActionIgnore ||
		rules.Rules[0].OnPodConditions[0].Type != corev1.DisruptionTarget {
		t.Errorf("pod failure policy %+v, want disruptions ignored", rules)
	}
}

// Build Jobs beyond --max-builds wait, Pending, saying so; a slot that
// frees up starts the next.
func TestJobBuildsAreBounded(t *testing.T) {
	c := kube.Get(t)
	cl, _ := startController(t, func(o *Options) {
		o.MaxBuilds = 1
		// This cluster has no node: the Jobs never finish, which is what
		// keeps the slot taken.
		o.Builder = &JobBuilder{Logs: c.Client(), Image: "kix.local/kix:test", Command: []string{"kix"}}
	})
	ns := c.Namespace(t)
	ctx := context.Background()
	direct := newClient(t) // the manager's cache may lag behind the images'
	jobsOf := func(name string) int {
		var jobs batchv1.JobList
		if err := direct.List(ctx, &jobs, client.InNamespace(ns), client.MatchingLabels{labelNixImage: name}); err != nil {
			t.Fatal(err)
		}
		return len(jobs.Items)
	}
	if err := cl.Create(ctx, newImage(ns, "first", "hello")); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, cl, ns, "first", v1alpha1.NixImageBuilding)
	if err := cl.Create(ctx, newImage(ns, "second", "hello")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the second image queued", func() (bool, string) {
		var img v1alpha1.NixImage
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "second"}, &img); err != nil {
			return false, err.Error()
		}
		c := readyCondition(img.Status.Conditions)
		return img.Status.Phase == v1alpha1.NixImagePending && c != nil && c.Reason == ReasonQueued &&
			img.Status.Message == "queued: 1 of 1 build Jobs are running", img.Status.Message
	})
	if n := jobsOf("second"); n != 0 {
		t.Fatalf("%d Jobs for the queued image", n)
	}
	// The first image goes, and its Job with it. That is the garbage
	// collector's work, done here too because it learns of new CRDs only
	// every 30s; whichever of the two deletes the Job first wins.
	var jobs batchv1.JobList
	if err := direct.List(ctx, &jobs, client.InNamespace(ns), client.MatchingLabels{labelNixImage: "first"}); err != nil || len(jobs.Items) != 1 {
		t.Fatalf("the first image's Jobs: %v, %v", len(jobs.Items), err)
	}
	if err := cl.Delete(ctx, newImage(ns, "first")); err != nil {
		t.Fatal(err)
	}
	err := cl.Delete(ctx, &jobs.Items[0], client.PropagationPolicy(metav1.DeletePropagationBackground))
	if client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	waitPhase(t, cl, ns, "second", v1alpha1.NixImageBuilding)
	if n := jobsOf("second"); n != 1 {
		t.Errorf("%d Jobs for the admitted image", n)
	}
}

// builtElsewhere builds with Nix but reports the build as one that ran
// elsewhere (a Job) for Took.
type builtElsewhere struct{ took time.Duration }

func (b builtElsewhere) Build(ctx context.Context, img *v1alpha1.NixImage, req image.PackageRequest) (*BuildResult, error) {
	res, err := NixBuilder{}.Build(ctx, img, req)
	if res != nil {
		res.Took = b.took
	}
	return res, err
}

// inAnotherStore reports a build whose store path is in a store the
// controller does not read (a Job on another node).
type inAnotherStore struct{}

func (inAnotherStore) Build(context.Context, *v1alpha1.NixImage, image.PackageRequest) (*BuildResult, error) {
	return &BuildResult{StorePath: "/nix/store/00000000000000000000000000000000-elsewhere"}, nil
}

// A build whose result the controller cannot make an image of stays
// Building, and its status says why.
func TestBuiltButNoImageSaysWhy(t *testing.T) {
	cl, _ := startController(t, func(o *Options) { o.Builder = inAnotherStore{} })
	ns := kube.Get(t).Namespace(t)
	if err := cl.Create(context.Background(), newImage(ns, "lost", "hello")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the status saying why", func() (bool, string) {
		var img v1alpha1.NixImage
		if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "lost"}, &img); err != nil {
			return false, err.Error()
		}
		c := readyCondition(img.Status.Conditions)
		return img.Status.Phase == v1alpha1.NixImageBuilding && c != nil && strings.Contains(c.Message, "00000000000000000000000000000000-elsewhere") &&
			strings.Contains(img.Status.Message, "but not its image"), img.Status.Message
	})
}

// The Built message says how long the build took, as its builder measured
// it, not how long the last reconcile did.
func TestBuiltSaysHowLongTheBuildTook(t *testing.T) {
	cl, _ := startController(t, func(o *Options) { o.Builder = builtElsewhere{took: 83 * time.Second} })
	ns := kube.Get(t).Namespace(t)
	if err := cl.Create(context.Background(), newImage(ns, "timed", "hello")); err != nil {
		t.Fatal(err)
	}
	img := waitPhase(t, cl, ns, "timed", v1alpha1.NixImageBuilt)
	if want := "built in 1m23s: " + img.Status.Image; img.Status.Message != want {
		t.Errorf("message %q, want %q", img.Status.Message, want)
	}
}

// A build Job took from its start to its completion, as the Job
// controller recorded them.
func TestJobTook(t *testing.T) {
	start := metav1.NewTime(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	end := metav1.NewTime(start.Add(83 * time.Second))
	for _, tc := range []struct {
		name       string
		start, end *metav1.Time
		want       time.Duration
	}{
		{"finished", &start, &end, 83 * time.Second},
		{"no start time", nil, &end, 0},
		{"no completion time", &start, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := &batchv1.Job{Status: batchv1.JobStatus{StartTime: tc.start, CompletionTime: tc.end}}
			if got := jobTook(job); got != tc.want {
				t.Errorf("jobTook = %s, want %s", got, tc.want)
			}
		})
	}
}

// A NixImage whose spec changes while its Job builds gets a Job for the new
// generation, and the earlier generation's Job is deleted: it builds what
// is no longer asked for, and does not hold the build slot the new one
// needs. So too for a name longer than a label value.
func TestEarlierGenerationsJobIsDeleted(t *testing.T) {
	for _, tc := range []struct{ test, name string }{{"short name", "changing"}, {"long name", longImageName}} {
		t.Run(tc.test, func(t *testing.T) { earlierGenerationsJobIsDeleted(t, tc.name) })
	}
}

func earlierGenerationsJobIsDeleted(t *testing.T, name string) {
	c := kube.Get(t)
	cl, _ := startController(t, func(o *Options) {
		o.MaxBuilds = 1
		// This cluster has no node: the first Job is still running when
		// the spec changes.
		o.Builder = &JobBuilder{Logs: c.Client(), Image: "kix.local/kix:test", Command: []string{"kix"}}
	})
	ns := c.Namespace(t)
	ctx := context.Background()
	direct := newClient(t)
	jobs := func() []string {
		var list batchv1.JobList
		if err := direct.List(ctx, &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, j := range list.Items {
			if j.DeletionTimestamp.IsZero() {
				names = append(names, j.Name)
			}
		}
		return names
	}
	if err := cl.Create(ctx, newImage(ns, name, "hello")); err != nil {
		t.Fatal(err)
	}
	img := waitPhase(t, cl, ns, name, v1alpha1.NixImageBuilding)
	first := jobName(img)
	if got := jobs(); !slices.Equal(got, []string{first}) {
		t.Fatalf("Jobs %v, want %s", got, first)
	}

	update(t, direct, img, func(i *v1alpha1.NixImage) { i.Spec.Contents = []string{"hello", "greeting"} })
	img = waitPhase(t, direct, ns, name, v1alpha1.NixImageBuilding) // the cache may hold the first generation still
	second := jobName(img)
	if second == first {
		t.Fatalf("the second generation's Job is %s, the first's", second)
	}
	eventually(t, 30*time.Second, "only the second generation's Job", func() (bool, string) {
		got := jobs()
		return slices.Equal(got, []string{second}), fmt.Sprint(got)
	})

	// A third generation that is refused before any build still stops the
	// second's Job.
	update(t, direct, img, func(i *v1alpha1.NixImage) { i.Spec.PackageSet = "/not/an/allowed/set.nix" })
	waitPhase(t, direct, ns, name, v1alpha1.NixImageFailed)
	eventually(t, 30*time.Second, "no Job left", func() (bool, string) {
		got := jobs()
		return len(got) == 0, fmt.Sprint(got)
	})
}

// longImageName is a NixImage name longer than a label value.
var longImageName = "an-image-whose-name-is-" + strings.Repeat("long", 19) + "er"
