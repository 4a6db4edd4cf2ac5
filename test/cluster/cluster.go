// Package cluster runs a real, throwaway Kubernetes cluster on this machine
// for kix's tests and demo: etcd, kube-apiserver, kube-controller-manager
// and kube-scheduler on free loopback ports, and optionally a node
// (containerd, runc, CNI bridge and a kubelet) that really runs pods. The
// Kubernetes binaries are built from upstream source (see KubeVersion);
// everything else comes from Debian packages.
//
// Everything a cluster starts lives under one folder in os.TempDir() and is
// owned by a supervisor process (see supervisor.go), which tears it all down
// when Stop is called or when the process that started it dies, however it
// dies. What even the supervisor could not clean (it was SIGKILLed) is swept
// by the next Start.
//
// From tests, use one cluster per package:
//
//	var kube = cluster.NewShared(cluster.Options{Node: true})
//
//	func TestMain(m *testing.M) { os.Exit(kube.Run(m)) }
//
//	func TestSomething(t *testing.T) {
//		c := kube.Get(t)       // started on first use
//		ns := c.Namespace(t)   // deleted when the test ends
//		...
//	}
package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options say what to start.
type Options struct {
	// Node also starts containerd and a kubelet, so pods run.
	Node bool `json:"node"`
	// KubeBinDir holds kube-apiserver, kubelet and friends; default KubeBinDir().
	KubeBinDir string `json:"kubeBinDir,omitempty"`
	// KeepDir leaves the cluster's folder (logs, configs) after Stop.
	KeepDir bool `json:"keepDir,omitempty"`
	// Progress, if set, is told what the cluster is doing while it starts.
	Progress func(string) `json:"-"`

	Dir string `json:"dir"` // set by Start
}

// Info is how to reach a running cluster.
type Info struct {
	Dir        string `json:"dir"`        // everything the cluster writes is under here
	Kubeconfig string `json:"kubeconfig"` // admin kubeconfig (system:masters)
	Server     string `json:"server"`
	Token      string `json:"token"`
	CACert     string `json:"caCert"`

	// Set when the cluster has a node.
	NodeName          string `json:"nodeName,omitempty"`
	ContainerdAddress string `json:"containerdAddress,omitempty"`
	RegistryConfigDir string `json:"registryConfigDir,omitempty"` // containerd's certs.d
	KubeletRootDir    string `json:"kubeletRootDir,omitempty"`
	PodSubnet         string `json:"podSubnet,omitempty"`
	Bridge            string `json:"bridge,omitempty"` // the pods' network interface on the host
}

// Cluster is a running cluster. Stop it when done.
type Cluster struct {
	Info Info

	opts     Options
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	messages <-chan message
	done     chan struct{} // closed when the supervisor has exited
	config   *rest.Config
	client   kubernetes.Interface
	stopOnce sync.Once
	stopErr  error
}

// Start starts a cluster and returns once it is ready: the API server
// answers, and with a node, the node is Ready. If ctx ends first, everything
// started so far is torn down before Start returns.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	sweepStale()
	if _, err := resolveBinaries(opts); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	return startIn(ctx, dir, opts)
}

// startIn starts a cluster whose folder is dir, which must exist and be
// named with dirPrefix under os.TempDir() for stale sweeps to find it.
func startIn(ctx context.Context, dir string, opts Options) (*Cluster, error) {
	opts.Dir = dir
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	c, err := launchSupervisor(opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	for {
		select {
		case <-ctx.Done():
			_ = c.Stop()
			return nil, ctx.Err()
		case m, ok := <-c.messages:
			switch {
			case !ok:
				_ = c.Stop()
				return nil, fmt.Errorf("cluster supervisor exited during start; see %s", filepath.Join(dir, "logs"))
			case m.Progress != "":
				if opts.Progress != nil {
					opts.Progress(m.Progress)
				}
			case m.Error != "":
				_ = c.Stop()
				return nil, errors.New(m.Error)
			case m.Ready != nil:
				c.Info = *m.Ready
				if err := c.connect(); err != nil {
					_ = c.Stop()
					return nil, err
				}
				go c.watch()
				return c, nil
			}
		}
	}
}

func launchSupervisor(opts Options) (*Cluster, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	encoded, err := json.Marshal(opts)
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(opts.Dir, "logs", "supervisor.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), supervisorEnv+"=1", optionsEnv+"="+string(encoded))
	cmd.Stderr = logFile
	// Its own process group: a terminal's Ctrl-C reaches the parent, whose
	// death closes the pipe; the supervisor then tears down in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting cluster supervisor: %w", err)
	}
	messages := make(chan message, 16)
	go func() {
		defer close(messages)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			var m message
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				messages <- m
			}
		}
	}()
	return &Cluster{opts: opts, cmd: cmd, stdin: stdin, messages: messages, done: make(chan struct{})}, nil
}

// watch follows a running cluster's supervisor until it exits.
func (c *Cluster) watch() {
	for m := range c.messages {
		if m.Stopped && m.StopErr != "" {
			c.stopErr = errors.New(m.StopErr)
		}
	}
	if err := c.cmd.Wait(); err != nil && c.stopErr == nil {
		c.stopErr = fmt.Errorf("cluster supervisor: %w", err)
	}
	close(c.done)
}

// Done is closed when the cluster has stopped, by Stop or because its
// supervisor was killed.
func (c *Cluster) Done() <-chan struct{} { return c.done }

// Stop tears the cluster down and waits until nothing of it is left:
// processes, mounts, network interfaces and (unless KeepDir) its folder.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		c.stdin.Close()
		if c.config == nil {
			// Start never handed the cluster to watch; do it here.
			go c.watch()
		}
		select {
		case <-c.done:
		case <-time.After(3 * time.Minute):
			_ = c.cmd.Process.Kill()
			<-c.done
			c.stopErr = errors.New("cluster supervisor did not stop within 3 minutes; killed it")
			_ = sweep(c.opts.Dir, c.opts.KeepDir)
		}
	})
	return c.stopErr
}

func (c *Cluster) connect() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Info.Kubeconfig)
	if err != nil {
		return fmt.Errorf("loading %s: %w", c.Info.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	c.config, c.client = cfg, client
	return nil
}

// RESTConfig returns a client configuration for the cluster's admin user,
// with client-side rate limits raised for tests.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.config) }

// Client returns a typed client for the cluster's admin user.
func (c *Cluster) Client() kubernetes.Interface { return c.client }
