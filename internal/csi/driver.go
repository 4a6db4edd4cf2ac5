package csi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	mount "k8s.io/mount-utils"

	"github.com/kix-project/kix/internal/image"
	"github.com/kix-project/kix/internal/nix"
)

// DriverName is the CSI driver's name, as pods' volumes and the CSIDriver
// object name it.
const DriverName = "csi.kix.dev"

// Options configure a Driver.
type Options struct {
	// NodeID is the node's name as the CO knows it.
	NodeID string
	// StateDir holds the node's store and the volumes' views.
	StateDir string
	// Substituters are binary cache URLs, tried in order.
	Substituters []string
	// TrustedKeys are the public keys ("name:base64") narinfos must be
	// signed with.
	TrustedKeys []string
	// System is the node's Nix system; image.CurrentSystem() if empty.
	System string
	// Parallel bounds how many store paths are fetched at once; 8 if zero.
	Parallel int
	// HTTPClient fetches from substituters; the nix package's own client
	// (see nix.BinaryCacheOptions) if nil.
	HTTPClient *http.Client
	// Mounter mounts views; mount-utils' mounter (the mount command,
	// without systemd) if nil.
	Mounter mount.Interface
	// Log is told what happens; slog.Default() if nil.
	Log *slog.Logger
}

// Driver is the CSI node plugin: Identity and Node services over one
// node-local store.
type Driver struct {
	opts    Options
	store   *Store
	mounter mount.Interface
	log     *slog.Logger
	locks   keyedMutex
	gcKick  chan struct{}
}

// OpenStore opens the store in opts.StateDir, filled from
// opts.Substituters, as the driver does (and `kix csi fetch`).
func OpenStore(opts Options) (*Store, error) {
	caches := make([]*nix.BinaryCache, 0, len(opts.Substituters))
	for _, u := range opts.Substituters {
		c, err := nix.NewBinaryCache(u, nix.BinaryCacheOptions{TrustedKeys: opts.TrustedKeys, Client: opts.HTTPClient})
		if err != nil {
			return nil, fmt.Errorf("substituter %s: %w", u, err)
		}
		caches = append(caches, c)
	}
	abs, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, err
	}
	parallel := opts.Parallel
	if parallel == 0 {
		parallel = 8
	}
	return NewStore(abs, caches, parallel)
}

// New checks opts and opens the state folder.
func New(opts Options) (*Driver, error) {
	if opts.NodeID == "" {
		return nil, errors.New("csi: a node ID is needed")
	}
	if opts.StateDir == "" {
		return nil, errors.New("csi: a state folder is needed")
	}
	if len(opts.TrustedKeys) == 0 {
		return nil, errors.New("csi: no trusted public key: narinfos could not be verified")
	}
	if opts.System == "" {
		opts.System = image.CurrentSystem()
	}
	store, err := OpenStore(opts)
	if err != nil {
		return nil, err
	}
	opts.StateDir = store.dir
	d := &Driver{opts: opts, store: store, mounter: opts.Mounter, log: opts.Log, gcKick: make(chan struct{}, 1)}
	if d.mounter == nil {
		d.mounter = mount.NewWithoutSystemd("")
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	return d, nil
}

// Store is the node's store folder.
func (d *Driver) Store() *Store { return d.store }

// Register adds the Identity and Node services to a gRPC server.
func (d *Driver) Register(s *grpc.Server) {
	csi.RegisterIdentityServer(s, &identityServer{d: d})
	csi.RegisterNodeServer(s, &nodeServer{d: d})
}

// Serve serves CSI on endpoint (unix:///path, or a path) until ctx ends,
// collecting garbage at start and after each unpublish. If kubeletDir is
// set, it also registers with that kubelet.
func (d *Driver) Serve(ctx context.Context, endpoint, kubeletDir string) error {
	sock := socketPath(endpoint)
	ln, err := listenUnix(sock)
	if err != nil {
		return fmt.Errorf("CSI endpoint: %w", err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(d.logCalls))
	d.Register(srv)
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(1)
	go func() { defer wg.Done(); errc <- srv.Serve(ln) }()
	var reg *registration
	if kubeletDir != "" {
		if reg, err = d.startRegistration(kubeletDir, sock); err != nil {
			srv.Stop()
			return err
		}
	}
	d.kickGC()
	gcCtx, stopGC := context.WithCancel(ctx)
	defer stopGC()
	wg.Add(1)
	go func() { defer wg.Done(); d.gcLoop(gcCtx) }()
	d.log.Info("serving CSI", "driver", DriverName, "endpoint", sock, "node", d.opts.NodeID, "system", d.opts.System)
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	if reg != nil {
		reg.stop()
	}
	srv.GracefulStop()
	stopGC() // also when the server failed, not only when ctx ended
	wg.Wait()
	os.Remove(sock)
	return err
}

// socketPath strips unix:// from an endpoint.
func socketPath(endpoint string) string {
	p := strings.TrimPrefix(endpoint, "unix://")
	return strings.TrimPrefix(p, "unix:")
}

// listenUnix listens on a unix socket, replacing a stale one.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return net.Listen("unix", path)
}

func (d *Driver) logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err != nil {
		d.log.Warn("CSI call failed", "method", info.FullMethod, "err", err)
	} else {
		d.log.Debug("CSI call", "method", info.FullMethod)
	}
	return resp, err
}

// keyedMutex serialises work on one key (a volume ID).
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	sync.Mutex
	users int
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
