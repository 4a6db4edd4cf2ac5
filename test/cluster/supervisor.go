package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// The harness runs its components under a supervisor: the test binary (or
// any binary importing this package) re-executed with supervisorEnv set.
// The supervisor starts every component, reports on its stdout, and tears
// everything down when its stdin closes. Its parent closes stdin in Stop,
// and the kernel closes it when the parent dies for any reason (a panic in
// a test, SIGKILL, Ctrl-C), so teardown does not depend on the parent
// getting to run cleanup code.
const (
	supervisorEnv = "KIX_CLUSTER_SUPERVISOR"
	optionsEnv    = "KIX_CLUSTER_OPTIONS"
)

func init() {
	if os.Getenv(supervisorEnv) == "1" {
		// A re-executed supervisor never runs the program it was built as.
		os.Exit(superviseMain())
	}
}

// message is one line of the supervisor's report to its parent.
type message struct {
	Progress string `json:"progress,omitempty"`
	Ready    *Info  `json:"ready,omitempty"`
	Error    string `json:"error,omitempty"`   // start failed
	Stopped  bool   `json:"stopped,omitempty"` // teardown finished
	StopErr  string `json:"stopError,omitempty"`
}

type supervisor struct {
	opts  Options
	dir   string
	bins  binaries
	l     *launcher
	logs  string
	send  func(message)
	mu    sync.Mutex
	procs map[string]*process
	info  Info
}

func superviseMain() int {
	os.Unsetenv(supervisorEnv)
	// The parent may be gone when the supervisor reports; a write to the
	// closed pipe must fail, not kill the supervisor before it cleans up.
	signal.Ignore(syscall.SIGPIPE)
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	var opts Options
	if err := json.Unmarshal([]byte(os.Getenv(optionsEnv)), &opts); err != nil {
		log.Printf("decoding options: %v", err)
		return 2
	}
	var sendMu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	send := func(m message) {
		sendMu.Lock()
		defer sendMu.Unlock()
		_ = enc.Encode(m)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin) // returns when the parent closes stdin or dies
		log.Printf("parent closed the pipe: stopping")
		cancel()
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		sig := <-sigs
		log.Printf("received %v: stopping", sig)
		cancel()
	}()

	s := &supervisor{
		opts:  opts,
		dir:   opts.Dir,
		l:     newLauncher(),
		logs:  filepath.Join(opts.Dir, "logs"),
		send:  send,
		procs: map[string]*process{},
		info:  Info{Dir: opts.Dir, NodeName: ""},
	}
	if err := s.runAndTeardown(ctx); err != nil {
		log.Printf("teardown: %v", err)
		send(message{Stopped: true, StopErr: err.Error()})
		return 1
	}
	send(message{Stopped: true})
	return 0
}

// runAndTeardown starts the cluster, reports, waits for the parent to let
// go, and always tears down, even after a panic.
func (s *supervisor) runAndTeardown(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Printf("panic: %v\n%s", r, debug.Stack())
			s.send(message{Error: fmt.Sprintf("supervisor panic: %v", r)})
		}
		err = s.teardown()
	}()
	if err := writeOwner(s.dir); err != nil {
		s.send(message{Error: err.Error()})
		return nil
	}
	if err := s.startAll(ctx); err != nil {
		log.Printf("start: %v", err)
		s.send(message{Error: err.Error()})
		return nil
	}
	info := s.info
	s.send(message{Ready: &info})
	<-ctx.Done()
	return nil
}

func (s *supervisor) startAll(ctx context.Context) error {
	bins, err := resolveBinaries(s.opts)
	if err != nil {
		return err
	}
	s.bins = bins
	if s.opts.Node {
		s.info.NodeName = NodeName
	}
	g, gctx := errgroup.WithContext(ctx)
	apiReady := make(chan struct{})
	g.Go(func() error {
		if err := s.startControlPlane(gctx); err != nil {
			return err
		}
		close(apiReady)
		return nil
	})
	if s.opts.Node {
		g.Go(func() error { return s.startNode(gctx, apiReady) })
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return s.waitForDefaultServiceAccount(ctx)
}

func (s *supervisor) progress(msg string) {
	log.Print(msg)
	s.send(message{Progress: msg})
}

func (s *supervisor) start(name, path string, args, env []string) (*process, error) {
	p, err := s.l.start(s.logs, name, path, args, env)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	log.Printf("started %s (pid %d)", name, p.cmd.Process.Pid)
	return p, nil
}

// teardown stops components in dependency order, then sweeps whatever is
// left: processes, mounts, the bridge, and the folder.
func (s *supervisor) teardown() error {
	s.mu.Lock()
	procs := s.procs
	s.mu.Unlock()
	var errs []error
	stop := func(name string, grace time.Duration) {
		if p, ok := procs[name]; ok {
			p.stop(grace)
			log.Printf("stopped %s", name)
		}
	}
	stop("kubelet", 5*time.Second)
	if p, ok := procs["containerd"]; ok && !p.exited() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := removePodSandboxes(ctx, s.info.ContainerdAddress); err != nil {
			log.Printf("%v", err) // the sweep below still cleans up
		}
		cancel()
	}
	stop("containerd", 5*time.Second)
	stop("kube-scheduler", 3*time.Second)
	stop("kube-controller-manager", 3*time.Second)
	stop("kube-apiserver", 5*time.Second)
	stop("etcd", 5*time.Second)
	if s.opts.KeepDir {
		log.Printf("keeping %s", s.dir)
	}
	if err := sweep(s.dir, s.opts.KeepDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
