package csi

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/nar"
)

// An unpack that fails on the node's side (here: its folder is missing)
// leaves no NAR parser goroutine behind, however often it is retried.
func TestFailedUnpacksLeaveNoGoroutines(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), bytes.Repeat([]byte("x"), 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := nar.DumpPath(&b, src); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for range 50 {
		if err := unpackNAR(bytes.NewReader(b.Bytes()), filepath.Join(t.TempDir(), "missing", "p")); err == nil {
			t.Fatal("unpacking into a missing folder succeeded")
		}
	}
	// The parsers exit once drained; wait for the scheduler to see them go.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Errorf("%d goroutines before 50 failed unpacks, %d after", before, after)
	}
}
