package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kix-project/kix/internal/nix"
)

func TestCacheKeygen(t *testing.T) {
	dir := t.TempDir()
	code, out, stderr := run(t, "cache", "keygen", "cache.example.org-1", "--out-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	sec := filepath.Join(dir, "cache.example.org-1.sec")
	k, err := nix.ReadSigningKey(sec)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join(dir, "cache.example.org-1.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != k.Public() || string(pub) != k.Public() || !strings.HasPrefix(k.Public(), "cache.example.org-1:") {
		t.Errorf("printed %q, .pub holds %q, secret key's public half is %q", out, pub, k.Public())
	}
	if fi, _ := os.Stat(sec); fi.Mode().Perm() != 0o600 {
		t.Errorf("secret key mode %v, want 0600", fi.Mode().Perm())
	}
	if code, _, _ := run(t, "cache", "keygen", "cache.example.org-1", "--out-dir", dir); code == 0 {
		t.Error("keygen overwrote an existing secret key")
	}
}

func TestCacheAndCSIUsage(t *testing.T) {
	for _, args := range [][]string{
		{"cache"},
		{"cache", "--store", "--dir", "/tmp"},
		{"cache", "--store", "--upload-token", "x"},
		{"cache", "--store", "--compression", "lz4"},
		{"cache", "keygen"},
		{"cache", "keygen", "bad:name"},
		{"csi", "--node-id", "n"},
		{"csi", "--node-id", "n", "--substituter", "http://x"},
		{"csi", "fetch", "--substituter", "http://x", "--trusted-public-key", "k:AAAA", "not-a-path"},
	} {
		if code, _, stderr := run(t, args...); code != ExitUsage {
			t.Errorf("kix %v: exit %d, want %d (%s)", args, code, ExitUsage, stderr)
		}
	}
}
