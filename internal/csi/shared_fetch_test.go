package csi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/kix-project/kix/internal/nix"
)

// Two volumes need path P at once; the first also needs Q, which no cache
// has. The first fails, and its download of P with it; the second, which
// waited on that download, fetches P itself instead of failing with the
// first one's reason.
func TestSharedFetchOutlivesTheVolumeThatStartedIt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var narP bytes.Buffer
	if err := nar.DumpPath(&narP, dir); err != nil {
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
	const hashP, hashQ = "0000000000000000000000000000000p", "0000000000000000000000000000000q"
	pathP, pathQ := nix.StoreDir+"/"+hashP+"-p", nix.StoreDir+"/"+hashQ+"-q"
	sum := sha256.Sum256(narP.Bytes())
	ni, err := nix.NarinfoOf(&nix.PathInfo{Path: pathP, NarHash: "sha256:" + nixbase32.EncodeToString(sum[:]), NarSize: uint64(narP.Len())}, "nar/p.nar", "none")
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Sign(ni); err != nil {
		t.Fatal(err)
	}

	// P's NAR arrives slowly, so that the second volume joins its
	// download; Q's narinfo is refused once the second volume is waiting.
	narStarted, refuseQ := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/nix-cache-info":
			_, _ = w.Write([]byte("StoreDir: /nix/store\n"))
		case "/" + hashP + ".narinfo":
			_, _ = w.Write([]byte(ni.String()))
		case "/" + hashQ + ".narinfo":
			<-refuseQ
			http.NotFound(w, r)
		case "/nar/p.nar":
			once.Do(func() { close(narStarted) })
			_, _ = w.Write(narP.Bytes()[:10])
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Second):
			}
			_, _ = w.Write(narP.Bytes()[10:])
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	store, err := OpenStore(Options{StateDir: t.TempDir(), Substituters: []string{srv.URL}, TrustedKeys: []string{public}})
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
