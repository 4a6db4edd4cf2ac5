package csi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kix-project/kix/internal/nix"
)

// nodeServer is the CSI Node service: publish and unpublish of inline
// volumes. There is no staging, and no stats or expansion: a volume is a
// read-only view of store paths.
type nodeServer struct {
	csi.UnimplementedNodeServer
	d *Driver
}

func (s *nodeServer) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: s.d.opts.NodeID}, nil
}

func (s *nodeServer) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{}, nil
}

// NodePublishVolume mounts the closure a volume names at its target: see
// the package doc for the steps and the errors.
func (s *nodeServer) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	paths, err := s.validatePublish(req)
	if err != nil {
		return nil, err
	}
	id, target := req.GetVolumeId(), filepath.Clean(req.GetTargetPath())
	unlock := s.d.locks.lock(id)
	defer unlock()
	s.d.store.mu.RLock()
	defer s.d.store.mu.RUnlock()

	dir := s.d.volumeDir(id)
	vol, err := readVolume(dir)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "volume %s: %v", id, err)
	}
	if vol != nil && !sameStrings(vol.StorePaths, paths) {
		return nil, status.Errorf(codes.AlreadyExists, "volume %s is published with %s, not %s",
			id, strings.Join(vol.StorePaths, " "), strings.Join(paths, " "))
	}
	if done, err := s.d.publishedAt(target, dir); done || err != nil {
		return &csi.NodePublishVolumeResponse{}, err
	}
	if vol == nil {
		closure, err := s.d.store.Fetch(ctx, paths)
		if err != nil {
			return nil, fetchStatus(id, err)
		}
		if err := s.d.makeVolume(id, paths, closure); err != nil {
			return nil, status.Errorf(codes.Internal, "volume %s: %v", id, err)
		}
	}
	if err := s.d.bindReadOnly(viewDir(dir), target); err != nil {
		s.d.dropUnusedVolume(dir)
		return nil, status.Errorf(codes.Internal, "volume %s: %v", id, err)
	}
	s.d.log.Info("published", "volume", id, "target", target, "storePaths", paths)
	return &csi.NodePublishVolumeResponse{}, nil
}

func (s *nodeServer) validatePublish(req *csi.NodePublishVolumeRequest) ([]string, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID missing")
	case req.GetTargetPath() == "":
		return nil, status.Error(codes.InvalidArgument, "target path missing")
	case !filepath.IsAbs(req.GetTargetPath()):
		return nil, status.Errorf(codes.InvalidArgument, "target path %q is not absolute", req.GetTargetPath())
	case req.GetVolumeCapability() == nil:
		return nil, status.Error(codes.InvalidArgument, "volume capability missing")
	case req.GetVolumeCapability().GetBlock() != nil:
		return nil, status.Error(codes.InvalidArgument, "csi.kix.dev volumes are file systems, not block devices")
	}
	return storePaths(req.GetVolumeContext(), s.d.opts.System)
}

// publishedAt reports whether target already is a mount of the volume's
// view, read-only; a target mounted with something else is an error. A
// view mounted without its flags (a publish that failed between its bind
// and its remount) is unmounted, to be mounted again.
func (d *Driver) publishedAt(target, volumeDir string) (bool, error) {
	table, err := mounts()
	if err != nil {
		return false, status.Errorf(codes.Internal, "reading mounts: %v", err)
	}
	at := mountsAt(table, target)
	if len(at) == 0 {
		return false, nil
	}
	top := at[len(at)-1]
	switch {
	case !isViewMount(top, volumeDir):
		return false, status.Errorf(codes.AlreadyExists, "%s is mounted with something else", target)
	case sealed(top):
		return true, nil
	}
	if err := d.unmountAll(target); err != nil {
		return false, status.Errorf(codes.Internal, "%s: a writable mount of the view: %v", target, err)
	}
	return false, nil
}

// fetchStatus turns a fetch error into the status the kubelet reports.
func fetchStatus(id string, err error) error {
	code := codes.Internal
	var nf *nix.NotFoundError
	switch {
	case errors.As(err, &nf):
		return status.Errorf(codes.NotFound, "volume %s: %s is in none of the substituters (%s)", id, nf.Path, nf.Store)
	case errors.Is(err, nix.ErrUntrusted):
		code = codes.PermissionDenied
	case errors.Is(err, nix.ErrHashMismatch):
		code = codes.DataLoss
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case isUnreachable(err):
		code = codes.Unavailable
	}
	return status.Errorf(code, "volume %s: %v", id, err)
}

// isUnreachable reports failures a retry may get past: the network (a
// connection's *net.OpError, a failed DNS lookup, a refused or reset
// connection, a request that timed out, a download cut short) and a
// substituter's 5xx answers. It matches types, not text, and not the
// Timeout method of any error: every syscall.Errno has one, so a full disk
// would pass. What net/http wraps in a *url.Error counts only for what it
// wraps: a certificate or a URL the client refuses stays refused.
func isUnreachable(err error) bool {
	var (
		urlErr  *url.Error
		opErr   *net.OpError
		dnsErr  *net.DNSError
		httpErr *nix.HTTPError
	)
	switch {
	case errors.As(err, &opErr), errors.As(err, &dnsErr):
		return true
	case errors.As(err, &urlErr) && urlErr.Timeout():
		return true
	case errors.As(err, &httpErr):
		return httpErr.StatusCode >= 500
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF)
}

// NodeUnpublishVolume unmounts a volume from target and removes target;
// the view goes when nothing mounts it, and unused store paths with the
// next garbage collection. Unpublishing what is not published succeeds.
func (s *nodeServer) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID missing")
	case req.GetTargetPath() == "":
		return nil, status.Error(codes.InvalidArgument, "target path missing")
	}
	id, target := req.GetVolumeId(), filepath.Clean(req.GetTargetPath())
	unlock := s.d.locks.lock(id)
	defer unlock()
	s.d.store.mu.RLock()
	defer s.d.store.mu.RUnlock()

	if err := s.d.unmountAll(target); err != nil {
		return nil, status.Errorf(codes.Internal, "volume %s: %v", id, err)
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "volume %s: removing %s: %v", id, target, err)
	}
	s.d.dropUnusedVolume(s.d.volumeDir(id))
	s.d.kickGC()
	s.d.log.Info("unpublished", "volume", id, "target", target)
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// dropUnusedVolume removes a volume's folder if no mount uses its view.
// Garbage collection retries what fails here.
func (d *Driver) dropUnusedVolume(dir string) {
	table, err := mounts()
	if err != nil || viewMounted(table, dir) {
		return
	}
	if err := removeAll(dir); err != nil {
		d.log.Warn("removing volume folder", "dir", dir, "err", fmt.Sprint(err))
	}
}
