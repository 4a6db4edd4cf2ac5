package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/test/fixture"
	"github.com/kix-project/kix/test/testenv"
)

// The kix binary end to end with Nix: keys from `kix cache keygen`, a CI
// job pushing a closure into `kix cache --dir` with the upload token from a
// netrc file, and a fresh Nix store copying it back from `kix cache --dir`
// and from `kix cache --store`, trusting only kix's public key.
func TestCacheWithNix(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root, which chroot needs")
	}
	hello := fixture.Build(t, "hello")
	keys := t.TempDir()
	public := strings.TrimSpace(runKix(t, "cache", "keygen", "kix-e2e-1", "--out-dir", keys))
	secret := filepath.Join(keys, "kix-e2e-1.sec")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	folderDir := t.TempDir()
	folder := startKixCache(t, "--dir", folderDir, "--secret-key", secret, "--upload-token-file", tokenFile)
	store := startKixCache(t, "--store", "--secret-key", secret, "--compression", "xz")

	netrc := filepath.Join(t.TempDir(), "netrc")
	if err := os.WriteFile(netrc, []byte("machine 127.0.0.1\npassword s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fixture.RunNix(t, "nix", "--extra-experimental-features", "nix-command", "copy",
		"--option", "netrc-file", netrc, "--to", folder, hello)

	for _, from := range []string{folder, store} {
		root := t.TempDir()
		fixture.RunNix(t, "nix", "--extra-experimental-features", "nix-command", "copy", "--from", from,
			"--to", "local?root="+root, "--option", "trusted-public-keys", public, hello)
		out, err := exec.Command("chroot", root, hello+"/bin/hello").CombinedOutput()
		if err != nil || string(out) != "Hello, world!\n" {
			t.Errorf("hello copied from %s: %q, %v", from, out, err)
		}
	}
	// Without the token, nothing is taken.
	webserver := fixture.Build(t, "webserver")
	cmd := exec.Command("nix", "--extra-experimental-features", "nix-command", "copy", "--to", folder, webserver)
	cmd.Env = append(fixture.Env(), "XDG_CACHE_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Errorf("a push without the token succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "401") {
		t.Errorf("the push failed, but not on the cache's refusal (401):\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(folderDir, nix.HashPart(webserver)+".narinfo")); !os.IsNotExist(err) {
		t.Errorf("the folder took webserver's narinfo without the token: %v", err)
	}
}
