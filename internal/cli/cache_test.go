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
	// A public key alone is not replaced either, and no secret key is
	// left without its public half.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "k.pub"), []byte("k:trusted"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := run(t, "cache", "keygen", "k", "--out-dir", other); code == 0 {
		t.Error("keygen overwrote an existing public key")
	}
	if pub, _ := os.ReadFile(filepath.Join(other, "k.pub")); string(pub) != "k:trusted" {
		t.Errorf("k.pub is now %q", pub)
	}
	if _, err := os.Stat(filepath.Join(other, "k.sec")); err == nil {
		t.Error("keygen wrote a secret key beside a public key it did not write")
	}
}

// An empty token file would refuse every upload: kix cache does not start.
func TestCacheEmptyUploadTokenFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "token")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "cache", "--dir", dir, "--upload-token-file", empty, "--listen", "127.0.0.1:0")
	if code == 0 || !strings.Contains(stderr, "is empty") {
		t.Errorf("exit %d, stderr %q", code, stderr)
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
		{"cache", "keygen", "has space"},
		{"cache", "--dir", "/tmp", "--compression", "xz"},
		{"cache", "--store", "--priority", "0"},
		{"push", "--docker", "--compression", "zstd", "/nix/store/00000000000000000000000000000000-x", "localhost:1/x"},
		{"registry", "--system", "sparc-linux", "--listen", "127.0.0.1:0"},
		{"registry", "--package-set", "/nonexistent/pkgs.nix", "--listen", "127.0.0.1:0"},
		{"csi", "--node-id", "n"},
		{"csi", "--node-id", "n", "--substituter", "http://x"},
		{"csi", "fetch", "--substituter", "http://x", "--trusted-public-key", "k:AAAA", "not-a-path"},
	} {
		if code, _, stderr := run(t, args...); code != ExitUsage {
			t.Errorf("kix %v: exit %d, want %d (%s)", args, code, ExitUsage, stderr)
		}
	}
}

// A push destination must name a repository: "host:port" alone would be
// read as Docker Hub's repository "host" with tag "port".
func TestPushReferenceNeedsARepository(t *testing.T) {
	path := "/nix/store/00000000000000000000000000000000-hello"
	if _, err := pushReference("localhost:5000", path, true); err == nil || !strings.Contains(err.Error(), "names no repository") {
		t.Errorf("host:port alone: %v", err)
	}
	ref, err := pushReference("localhost:5000/hello", path, true)
	if err != nil || ref.String() != "localhost:5000/hello:00000000000000000000000000000000" {
		t.Errorf("host:port/repo: %v, %v", ref, err)
	}
}
