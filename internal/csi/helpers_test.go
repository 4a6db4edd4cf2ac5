package csi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kix-project/kix/test/fixture"
	"github.com/kix-project/kix/test/testenv"
)

// helloPaths builds the fixture hello and returns it and its closure.
func helloPaths(t *testing.T) (string, []string) {
	t.Helper()
	hello := fixture.Build(t, "hello")
	return hello, fixture.Closure(t, hello)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root, which mounting needs")
	}
}

// testDriver is a Driver served on a unix socket, with clients.
type testDriver struct {
	*Driver
	node     csi.NodeClient
	identity csi.IdentityClient
	endpoint string
	state    string
}

// startDriver serves a driver over a real binary cache until the test
// ends, then unmounts whatever the test left mounted.
func startDriver(t *testing.T, opts Options) *testDriver {
	t.Helper()
	if opts.NodeID == "" {
		opts.NodeID = "test-node"
	}
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	// Unix socket paths are limited to 108 bytes; t.TempDir() can be long.
	sockDir, err := os.MkdirTemp("", "kix-csi-")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "unix://" + filepath.Join(sockDir, "csi.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, endpoint, "") }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		unmountUnder(t, opts.StateDir)
		os.RemoveAll(sockDir)
	})
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	td := &testDriver{Driver: d, node: csi.NewNodeClient(conn), identity: csi.NewIdentityClient(conn), endpoint: endpoint, state: opts.StateDir}
	td.waitReady(t)
	return td
}

func (td *testDriver) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := td.identity.Probe(t.Context(), &csi.ProbeRequest{})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("driver did not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unmountUnder unmounts anything a failed test left mounted under dir (and
// under the targets it made in temporary folders).
func unmountUnder(t *testing.T, dir string) {
	table, err := mounts()
	if err != nil {
		t.Error(err)
		return
	}
	for i := len(table) - 1; i >= 0; i-- {
		m := table[i]
		if strings.Contains(m.Root, dir) || strings.HasPrefix(m.MountPoint, os.TempDir()+"/") && strings.Contains(m.Root, "/volumes/") {
			_ = mountUnmount(m.MountPoint)
		}
	}
}

// publishReq is a publish request for a mount volume with attrs.
func publishReq(id, target string, attrs map[string]string) *csi.NodePublishVolumeRequest {
	return &csi.NodePublishVolumeRequest{
		VolumeId:   id,
		TargetPath: target,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		},
		VolumeContext: attrs,
		Readonly:      true,
	}
}

// entries lists a folder's names, or nil if it does not exist.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func indexOf(s, sub string) int { return strings.Index(s, sub) }

func errorsAs(err error, target any) bool { return errors.As(err, target) }
