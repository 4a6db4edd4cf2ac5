package csi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/nixbase32"
	mount "k8s.io/mount-utils"

	"github.com/kix-project/kix/internal/nix"
)

// Two volumes need path P at once; the first also needs Q, which no cache
// has. The first fails, and its download of P with it; the second, which
// waited on that download, fetches P itself instead of failing with the
// first one's reason.
func TestSharedFetchOutlivesTheVolumeThatStartedIt(t *testing.T) {
	const hashQ = "0000000000000000000000000000000q"
	pathP, narP, narinfoP, public := signedPath(t, "0000000000000000000000000000000p-p")
	pathQ := nix.StoreDir + "/" + hashQ + "-q"

	// P's NAR arrives slowly, so that the second volume joins its
	// download; Q's narinfo is refused once the second volume is waiting.
	narStarted, refuseQ := make(chan struct{}), make(chan struct{})
	var once sync.Once
	url := serveOnePath(t, pathP, narinfoP, func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(narStarted) })
		_, _ = w.Write(narP[:10])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(time.Second):
		}
		_, _ = w.Write(narP[10:])
	}, map[string]http.HandlerFunc{"/" + hashQ + ".narinfo": func(w http.ResponseWriter, r *http.Request) {
		<-refuseQ
		http.NotFound(w, r)
	}})
	store, err := OpenStore(Options{StateDir: t.TempDir(), Substituters: []string{url}, TrustedKeys: []string{public}})
	if err != nil {
		t.Fatal(err)
	}

	first := make(chan error, 1)
	go func() { _, err := store.Fetch(context.Background(), []string{pathP, pathQ}); first <- err }()
	<-narStarted
	second := make(chan error, 1)
	go func() { _, err := store.Fetch(context.Background(), []string{pathP}); second <- err }()
	// Time for the second volume to look P up and join its download.
	// Should it be late, it downloads P itself and the test passes
	// without having shown anything; it cannot fail for that reason.
	time.Sleep(300 * time.Millisecond)
	close(refuseQ)
	if err := <-first; err == nil {
		t.Error("the volume naming a path no cache has did not fail")
	}
	if err := <-second; err != nil {
		t.Errorf("the volume whose paths all exist failed: %v", err)
	}
	if _, err := os.Lstat(store.Path(pathP)); err != nil {
		t.Errorf("P is not in the store: %v", err)
	}
}

// signedPath is a store path (hash-name) of one small file: its NAR, its
// narinfo (NAR at nar/p.nar, uncompressed) signed by a new key, and that
// key's public half.
func signedPath(t *testing.T, base string) (path string, narBytes []byte, narinfo, public string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := nar.DumpPath(&b, dir); err != nil {
		t.Fatal(err)
	}
	secret, public, err := nix.GenerateSigningKey("test-1")
	if err != nil {
		t.Fatal(err)
	}
	key, err := nix.ParseSigningKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	path = nix.StoreDir + "/" + base
	sum := sha256.Sum256(b.Bytes())
	ni, err := nix.NarinfoOf(&nix.PathInfo{Path: path, NarHash: "sha256:" + nixbase32.EncodeToString(sum[:]), NarSize: uint64(b.Len())}, "nar/p.nar", "none")
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Sign(ni); err != nil {
		t.Fatal(err)
	}
	return path, b.Bytes(), ni.String(), public
}

// serveOnePath serves a binary cache of one path: its narinfo, and its NAR
// at nar/p.nar through nar; other holds further answers, by URL path.
func serveOnePath(t *testing.T, path, narinfo string, nar http.HandlerFunc, other map[string]http.HandlerFunc) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/nix-cache-info":
			_, _ = w.Write([]byte("StoreDir: /nix/store\n"))
		case "/" + nix.HashPart(path) + ".narinfo":
			_, _ = w.Write([]byte(narinfo))
		case "/nar/p.nar":
			nar(w, r)
		default:
			if h := other[r.URL.Path]; h != nil {
				h(w, r)
				return
			}
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// A publish whose read-only remount fails leaves no writable mount, and
// its retry does not take one for published.
func TestPublishNeverLeavesAWritableView(t *testing.T) {
	needRoot(t)
	path, narBytes, narinfo, public := signedPath(t, "0000000000000000000000000000000r-r")
	url := serveOnePath(t, path, narinfo, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(narBytes) }, nil)
	state := t.TempDir()
	defer unmountUnder(t, state)
	failing := &remountFails{Interface: mount.NewWithoutSystemd("")}
	d, err := New(Options{NodeID: "n", StateDir: state, Substituters: []string{url}, TrustedKeys: []string{public}, Mounter: failing})
	if err != nil {
		t.Fatal(err)
	}
	ns := &nodeServer{d: d}
	target := filepath.Join(t.TempDir(), "target")
	defer unmountUnder(t, filepath.Dir(target))
	req := publishReq("vol1", target, map[string]string{"storePath": path})

	failing.fail = true
	if _, err := ns.NodePublishVolume(t.Context(), req); err == nil {
		t.Fatal("the publish whose remount failed succeeded")
	}
	table, err := mounts()
	if err != nil {
		t.Fatal(err)
	}
	if at := mountsAt(table, target); len(at) != 0 {
		t.Errorf("after the failed publish, %d mounts at the target: %+v", len(at), at)
	}

	// A writable bind mount of the view left by other means is mounted
	// again, sealed, on the retry.
	failing.fail = false
	if err := os.MkdirAll(target, 0o750); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.NodePublishVolume(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if err := d.unmountAll(target); err != nil {
		t.Fatal(err)
	}
	if err := failing.Interface.Mount(viewDir(d.volumeDir("vol1")), target, "", []string{"bind"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.NodePublishVolume(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if table, err = mounts(); err != nil {
		t.Fatal(err)
	}
	at := mountsAt(table, target)
	if len(at) != 1 || !sealed(at[0]) {
		t.Errorf("after the retry over a writable view, mounts at the target: %+v", at)
	}
}

// remountFails binds as mount-utils does first, then, while fail is set,
// fails as its second step (the read-only remount) may.
type remountFails struct {
	mount.Interface
	fail bool
}

func (m *remountFails) Mount(source, target, fstype string, options []string) error {
	if !m.fail {
		return m.Interface.Mount(source, target, fstype, options)
	}
	if err := m.Interface.Mount(source, target, fstype, []string{"bind"}); err != nil {
		return err
	}
	return errors.New("remount: operation not permitted")
}
