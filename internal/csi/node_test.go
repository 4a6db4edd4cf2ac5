package csi

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/test/fixture"
)

// Two volumes naming hello: each target holds exactly the closure, the
// files are the same inodes as the node's store (one copy), the mounts are
// read-only, publishing again changes nothing, and once both are
// unpublished garbage collection empties the store.
func TestPublishSharesOneCopy(t *testing.T) {
	needRoot(t)
	hello, closure := helloPaths(t)
	bc := fixture.NewBinaryCache(t, "zstd", hello)
	d := startDriver(t, Options{Substituters: []string{bc.URL()}, TrustedKeys: []string{bc.Key.Public}})
	attrs := map[string]string{d.opts.System: hello}
	targets := []string{filepath.Join(t.TempDir(), "a", "mount"), filepath.Join(t.TempDir(), "b", "mount")}
	for i, target := range targets {
		for range 2 { // the second time is a no-op
			if _, err := d.node.NodePublishVolume(t.Context(), publishReq(fmt.Sprint("vol-", i), target, attrs)); err != nil {
				t.Fatalf("publish at %s: %v", target, err)
			}
		}
	}
	var want []string
	for _, p := range closure {
		want = append(want, nix.BaseName(p))
	}
	var greeting string
	for _, p := range closure {
		if nix.NamePart(p) == "hello-greeting-1.0" {
			greeting = filepath.Join(nix.BaseName(p), "share/hello/greeting.txt")
		}
	}
	inodes := []uint64{inode(t, filepath.Join(d.state, "store", greeting))}
	for _, target := range targets {
		if diff := cmp.Diff(want, entries(t, filepath.Join(target, "store"))); diff != "" {
			t.Errorf("%s/store (-closure +got):\n%s", target, diff)
		}
		if table, _ := mounts(); len(mountsAt(table, target)) != 1 {
			t.Errorf("%s: want exactly one mount (publishing twice must not stack)", target)
		}
		inodes = append(inodes, inode(t, filepath.Join(target, "store", greeting)))
		if err := os.WriteFile(filepath.Join(target, "store", "x"), nil, 0o644); !isReadOnly(err) {
			t.Errorf("writing into %s: got %v, want a read-only file system", target, err)
		}
	}
	if inodes[0] != inodes[1] || inodes[0] != inodes[2] {
		t.Errorf("greeting.txt inodes in the store and views a and b: %v, want one inode", inodes)
	}
	if got := entries(t, filepath.Join(d.state, "store")); len(got) != len(closure) {
		t.Errorf("node store holds %v, want the %d paths of the closure once", got, len(closure))
	}

	for i, target := range targets {
		for range 2 { // unpublishing what is not published succeeds
			if _, err := d.node.NodeUnpublishVolume(t.Context(), &csi.NodeUnpublishVolumeRequest{VolumeId: fmt.Sprint("vol-", i), TargetPath: target}); err != nil {
				t.Fatalf("unpublish %s: %v", target, err)
			}
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Errorf("target %s still exists: %v", target, err)
		}
	}
	if _, err := d.GC(); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"store", "volumes", "tmp"} {
		if got := entries(t, filepath.Join(d.state, sub)); len(got) > 0 {
			t.Errorf("after unpublishing everything and GC, %s holds %v", sub, got)
		}
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func isReadOnly(err error) bool {
	var pe *os.PathError
	return err != nil && (os.IsPermission(err) || errorsAs(err, &pe) && pe.Err == syscall.EROFS)
}

// Many volumes naming the same closure at once: each path is fetched once
// and every volume gets the whole closure.
func TestConcurrentPublish(t *testing.T) {
	needRoot(t)
	hello, closure := helloPaths(t)
	bc := fixture.NewBinaryCache(t, "xz", hello)
	d := startDriver(t, Options{Substituters: []string{bc.URL()}, TrustedKeys: []string{bc.Key.Public}})
	const n = 8
	base := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := filepath.Join(base, fmt.Sprint(i), "mount")
			_, errs[i] = d.node.NodePublishVolume(t.Context(), publishReq(fmt.Sprint("vol-", i), target, map[string]string{"storePath": hello}))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("volume %d: %v", i, err)
		}
	}
	narRequests := bc.Server.Count(func(p string) bool { return filepath.Dir(p) == "/nar" })
	if narRequests != len(closure) {
		t.Errorf("%d NAR downloads for %d volumes of a %d-path closure, want each path once", narRequests, n, len(closure))
	}
	for i := range n {
		target := filepath.Join(base, fmt.Sprint(i), "mount")
		if got := entries(t, filepath.Join(target, "store")); len(got) != len(closure) {
			t.Errorf("%s holds %v", target, got)
		}
		if _, err := d.node.NodeUnpublishVolume(t.Context(), &csi.NodeUnpublishVolumeRequest{VolumeId: fmt.Sprint("vol-", i), TargetPath: target}); err != nil {
			t.Error(err)
		}
	}
}

// Bad volumes fail with a status that says why, and leave nothing: no
// mount, no target, nothing in the node's store.
func TestPublishErrors(t *testing.T) {
	needRoot(t)
	hello, _ := helloPaths(t)
	bc := fixture.NewBinaryCache(t, "none", hello)
	tampered := fixture.NewBinaryCacheSigned(t, "none", bc.Key, hello)
	var greeting string
	for _, p := range fixture.Closure(t, hello) {
		if nix.NamePart(p) == "hello-greeting-1.0" {
			greeting = p
		}
	}
	editNAR(t, tampered.Dir, greeting)
	stranger := fixture.NewSigningKey(t, "stranger-1")
	missing := "/nix/store/00000000000000000000000000000000-missing-1.0"
	tests := []struct {
		name  string
		cache *fixture.BinaryCache
		key   string
		attrs map[string]string
		code  codes.Code
	}{
		{"a path no cache has", bc, "", map[string]string{"x86_64-linux": missing, "aarch64-linux": missing, "storePath": missing}, codes.NotFound},
		{"not signed by a trusted key", bc, stranger.Public, map[string]string{"storePath": hello}, codes.PermissionDenied},
		{"tampered NAR", tampered, "", map[string]string{"storePath": hello}, codes.DataLoss},
		{"another system only", bc, "", map[string]string{"riscv64-linux": hello}, codes.FailedPrecondition},
		{"not a store path", bc, "", map[string]string{"storePath": "/etc/passwd"}, codes.InvalidArgument},
		{"unknown attribute", bc, "", map[string]string{"path": hello}, codes.InvalidArgument},
		{"two paths in storePath", bc, "", map[string]string{"storePath": hello + " " + hello}, codes.InvalidArgument},
		{"no attributes", bc, "", nil, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.key
			if key == "" {
				key = tt.cache.Key.Public
			}
			d := startDriver(t, Options{Substituters: []string{tt.cache.URL()}, TrustedKeys: []string{key}})
			target := filepath.Join(t.TempDir(), "mount")
			_, err := d.node.NodePublishVolume(t.Context(), publishReq("vol", target, tt.attrs))
			if status.Code(err) != tt.code {
				t.Fatalf("got %v, want code %s", err, tt.code)
			}
			t.Logf("%s", status.Convert(err).Message())
			if _, err := os.Stat(target); !os.IsNotExist(err) {
				t.Errorf("target %s exists after a failed publish", target)
			}
			for _, sub := range []string{"volumes", "tmp"} {
				if got := entries(t, filepath.Join(d.state, sub)); len(got) > 0 {
					t.Errorf("%s holds %v after a failed publish", sub, got)
				}
			}
			for _, name := range entries(t, filepath.Join(d.state, "store")) {
				if tt.code == codes.DataLoss && name == nix.BaseName(greeting) {
					t.Errorf("the tampered path %s was kept", name)
				}
			}
		})
	}
}

// editNAR changes a byte of a path's (uncompressed) NAR in a cache folder.
func editNAR(t *testing.T, dir, path string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, nix.HashPart(path)+".narinfo"))
	if err != nil {
		t.Fatal(err)
	}
	var url string
	fmt.Sscanf(string(data[indexOf(string(data), "URL: "):]), "URL: %s", &url)
	nar := filepath.Join(dir, url)
	b, err := os.ReadFile(nar)
	if err != nil {
		t.Fatal(err)
	}
	i := indexOf(string(b), "Hello, world!")
	if i < 0 {
		t.Fatalf("%s does not hold the greeting", nar)
	}
	b[i] = 'J'
	if err := os.WriteFile(nar, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestValidation(t *testing.T) {
	d := startDriver(t, Options{Substituters: []string{"http://127.0.0.1:1"}, TrustedKeys: []string{"k-1:" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}})
	block := publishReq("vol", "/tmp/x", map[string]string{"storePath": "/nix/store/00000000000000000000000000000000-x"})
	block.VolumeCapability.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
	tests := []struct {
		name string
		req  *csi.NodePublishVolumeRequest
	}{
		{"no volume ID", publishReq("", "/tmp/x", nil)},
		{"no target", publishReq("vol", "", nil)},
		{"relative target", publishReq("vol", "x", nil)},
		{"block volume", block},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.node.NodePublishVolume(t.Context(), tt.req)
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("got %v, want InvalidArgument", err)
			}
		})
	}
}
