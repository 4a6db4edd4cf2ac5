package controller

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/image"
	"github.com/kix-project/kix/internal/nix"
)

// JobBuilder builds each NixImage generation in a Kubernetes Job of its own,
// running `kix image build` in the NixImage's namespace. The Job is named
// after the image's UID and generation and owned by it: a restarted
// controller finds the Job it started instead of starting another, a new
// generation's build deletes the Jobs of earlier ones, and deleting the
// NixImage deletes its Jobs.
type JobBuilder struct {
	// Client and Reader (uncached, for counting and finding Jobs exactly) are
	// the manager's; NewManager sets them, and Max from Options.MaxBuilds.
	Client client.Client
	Reader client.Reader
	// Max bounds the build Jobs running at once; 0 is no bound.
	Max int
	// Logs reads the build pod's log (the store path is its last line).
	Logs kubernetes.Interface
	// Image runs the build; Command is how to run kix in it, e.g.
	// ["kix"], or ["/bin/busybox", "chroot", "/host", "/usr/local/bin/kix"]
	// with HostRoot.
	Image   string
	Command []string
	// HostRoot mounts the node's / at /host, privileged, so a build can use
	// the node's own Nix and store.
	HostRoot bool
	// Node, with HostRoot, is the node build Jobs run on: the controller's
	// own (NODE_NAME, from the downward API), whose store it reads what
	// they built from. Elsewhere, the store path would be in another
	// node's store.
	Node string
	// Env is given to the build.
	Env []corev1.EnvVar
	// Timeout fails a build Job that has not finished by then, however it
	// is stuck (a pod that never schedules, an image that never pulls), so
	// it does not hold a build slot for good; 0 is none.
	Timeout time.Duration

	mu sync.Mutex // counting and starting Jobs is one step
}

// Supersede implements Superseder: it deletes the image's Jobs of earlier
// generations, so they neither run on nor hold a build slot.
func (b *JobBuilder) Supersede(ctx context.Context, img *v1alpha1.NixImage) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.deleteEarlierJobs(ctx, img)
}

// Admit implements Admitter: it deletes the image's Jobs of earlier
// generations, then starts its build Job if fewer than Max build Jobs are
// running, and says how many are if not.
func (b *JobBuilder) Admit(ctx context.Context, img *v1alpha1.NixImage, req image.PackageRequest) (bool, string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	name := jobName(img)
	if err := b.deleteEarlierJobs(ctx, img); err != nil {
		return false, "", err
	}
	if b.Max > 0 {
		var jobs batchv1.JobList
		if err := b.Reader.List(ctx, &jobs, client.HasLabels{labelNixImage}); err != nil {
			return false, "", err
		}
		running := 0
		for i := range jobs.Items {
			j := &jobs.Items[i]
			if j.Name == name && j.Namespace == img.Namespace {
				return true, "", nil // started before a restart
			}
			if j.Status.Succeeded == 0 && jobFailed(j) == nil && j.DeletionTimestamp.IsZero() {
				running++
			}
		}
		if running >= b.Max {
			return false, fmt.Sprintf("queued: %d of %d build Jobs are running", running, b.Max), nil
		}
	}
	return true, "", b.create(ctx, img, name, req)
}

// Build implements ImageBuilder.
func (b *JobBuilder) Build(ctx context.Context, img *v1alpha1.NixImage, req image.PackageRequest) (*BuildResult, error) {
	name := jobName(img)
	var job batchv1.Job
	// Read from the API server: the manager's cache may not have seen the
	// Job Admit just created, and a second create would be wasted.
	err := b.Reader.Get(ctx, client.ObjectKey{Namespace: img.Namespace, Name: name}, &job)
	if apierrors.IsNotFound(err) {
		return nil, b.create(ctx, img, name, req)
	}
	if err != nil {
		return nil, err
	}
	failed := jobFailed(&job)
	switch {
	case job.Status.Succeeded > 0:
		log, err := b.log(ctx, img.Namespace, name)
		if err != nil {
			return nil, err
		}
		path, err := nix.ParseStorePath(lastLine(log))
		if err != nil {
			return nil, fmt.Errorf("build Job %s did not print a store path: %w", name, err)
		}
		return &BuildResult{StorePath: path, Took: jobTook(&job)}, nil
	case failed != nil:
		msg := fmt.Sprintf("build Job %s failed (%s: %s)", name, failed.Reason, failed.Message)
		if log, err := b.log(ctx, img.Namespace, name); err == nil && log != "" {
			msg += ": " + tail(log, 10)
		}
		return nil, &BuildError{Message: msg}
	}
	return nil, nil // still running
}

// labelNixImage marks build Jobs with their image's name, as a labelValue.
const labelNixImage = "kix.dev/niximage"

// jobName names the Job building a generation of an image: its whole
// UID, so no two images' Jobs can share a name (it fits in 63 characters).
func jobName(img *v1alpha1.NixImage) string {
	return fmt.Sprintf("kix-build-%s-%d", img.UID, img.Generation)
}

func (b *JobBuilder) create(ctx context.Context, img *v1alpha1.NixImage, name string, req image.PackageRequest) error {
	args := append([]string{}, b.Command...)
	args = append(args, "image", "build", "--package-set", req.PackageSet, "--name", req.Name)
	for _, e := range req.Config.Entrypoint {
		args = append(args, "--entrypoint", e)
	}
	for _, c := range req.Config.Cmd {
		args = append(args, "--cmd", c)
	}
	for _, e := range sortedEnv(req.Config.Env) {
		args = append(args, "--env", e)
	}
	for _, s := range req.Systems {
		args = append(args, "--system", s)
	}
	args = append(args, req.Contents...)
	backoff := int32(0)
	pod := corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{
			Name: "build", Image: b.Image, Command: args[:1], Args: args[1:], Env: b.Env,
			ImagePullPolicy: corev1.PullIfNotPresent,
		}},
	}
	if b.HostRoot {
		privileged := true
		pod.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &privileged}
		pod.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/host"}}
		pod.Volumes = []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
		if b.Node != "" {
			pod.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{b.Node}}},
				}}},
			}}
		}
	}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: img.Namespace, Labels: map[string]string{labelNixImage: labelValue(img.Name)}},
		Spec: batchv1.JobSpec{
			BackoffLimit: &backoff,
			// A build failed once is failed (no retry of a failing build),
			// but a pod evicted or preempted (a node drained) is no
			// build's failure: the Job makes another.
			PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
				Action:          batchv1.PodFailurePolicyActionIgnore,
				OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}},
			}}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{labelNixImage: labelValue(img.Name)}}, Spec: pod},
		},
	}
	if b.Timeout > 0 {
		deadline := int64(b.Timeout.Seconds())
		job.Spec.ActiveDeadlineSeconds = &deadline
	}
	if err := controllerutil.SetControllerReference(img, job, b.Client.Scheme()); err != nil {
		return err
	}
	if err := b.Client.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating build Job %s: %w", name, err)
	}
	return nil
}

// deleteEarlierJobs deletes the image's build Jobs of earlier generations
// (its spec changed): they build what is no longer asked for, and a running
// one holds a build slot. Their pods go with them.
func (b *JobBuilder) deleteEarlierJobs(ctx context.Context, img *v1alpha1.NixImage) error {
	var jobs batchv1.JobList
	if err := b.Reader.List(ctx, &jobs, client.InNamespace(img.Namespace), client.MatchingLabels{labelNixImage: labelValue(img.Name)}); err != nil {
		return err
	}
	current := jobName(img)
	for i := range jobs.Items {
		j := &jobs.Items[i]
		if j.Name == current || !metav1.IsControlledBy(j, img) || !j.DeletionTimestamp.IsZero() {
			continue
		}
		err := b.Client.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground))
		if client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting build Job %s of an earlier generation: %w", j.Name, err)
		}
	}
	return nil
}

// jobTook is how long a finished Job ran: from its start to its
// completion, as the Job controller recorded them; 0 if it did not.
func jobTook(job *batchv1.Job) time.Duration {
	if job.Status.StartTime == nil || job.Status.CompletionTime == nil {
		return 0
	}
	return job.Status.CompletionTime.Sub(job.Status.StartTime.Time)
}

// jobFailed returns the Job's Failed condition, if it failed.
func jobFailed(job *batchv1.Job) *batchv1.JobCondition {
	for i, c := range job.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return &job.Status.Conditions[i]
		}
	}
	return nil
}

// log reads the log of the Job's pod.
func (b *JobBuilder) log(ctx context.Context, namespace, job string) (string, error) {
	pods, err := b.Logs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + job})
	if err != nil || len(pods.Items) == 0 {
		return "", fmt.Errorf("finding the pod of build Job %s: %v", job, err)
	}
	data, err := b.Logs.CoreV1().Pods(namespace).GetLogs(pods.Items[0].Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	return string(data), err
}

func lastLine(s string) string {
	var last string
	sc := bufio.NewScanner(bytes.NewReader([]byte(s)))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			last = line
		}
	}
	return last
}

// tail returns the last n lines of a log.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
