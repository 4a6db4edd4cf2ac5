package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/test/fixture"
	"github.com/kix-project/kix/test/testenv"
)

// These tests put kix cache between real Nix (Debian's 2.8 in CI) and a
// store: Nix must copy from it with signature checking on, push to it, and
// refuse what was tampered with.

// newKey makes a signing key with kix's own code.
func newKey(t *testing.T, name string) *nix.SigningKey {
	t.Helper()
	secret, _, err := nix.GenerateSigningKey(name)
	if err != nil {
		t.Fatal(err)
	}
	k, err := nix.ParseSigningKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serve(t *testing.T, opts Options) string {
	t.Helper()
	opts.ErrorLog = func(msg string, err error) { t.Logf("kix cache: %s: %v", msg, err) }
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutting the cache down: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serving: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// nixCmd runs a nix command with a narinfo cache of its own and returns
// its combined output.
func nixCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	testenv.LookPath(t, "nix")
	cmd := exec.Command("nix", append([]string{"--extra-experimental-features", "nix-command"}, args...)...)
	cmd.Env = append(fixture.Env(), "XDG_CACHE_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// copyFrom has Nix copy paths from a cache into a fresh store, trusting
// only key; it returns the store's root.
func copyFrom(t *testing.T, url, key string, paths ...string) (string, error) {
	t.Helper()
	root := t.TempDir()
	out, err := nixCmd(t, append([]string{"copy", "--from", url, "--to", "local?root=" + root,
		"--option", "trusted-public-keys", key, "--option", "require-sigs", "true"}, paths...)...)
	if err != nil {
		return root, fmt.Errorf("%w: %s", err, out)
	}
	return root, nil
}

// checkCopied checks that the fresh store at root holds paths, valid, with
// the NAR hashes of the local store.
func checkCopied(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		want, err := nix.NewLocalStore().PathInfo(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		out, err := nixCmd(t, "path-info", "--store", "local?root="+root, "--json", p)
		if err != nil {
			t.Fatalf("%s is not valid in the fresh store: %v\n%s", p, err, out)
		}
		var infos []struct {
			NarHash string `json:"narHash"`
		}
		if err := json.Unmarshal([]byte(out), &infos); err != nil || len(infos) != 1 {
			t.Fatalf("%s: path-info %s: %v", p, out, err)
		}
		if got, err := nix.NormalizeHash(infos[0].NarHash); err != nil || got != want.NarHash {
			t.Errorf("%s: NAR hash in the fresh store %s (%v), want %s", p, infos[0].NarHash, err, want.NarHash)
		}
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s not unpacked in the fresh store: %v", p, err)
		}
	}
}

func TestNixCopiesFromStore(t *testing.T) {
	hello := fixture.Build(t, "hello")
	closure := fixture.Closure(t, hello)
	key := newKey(t, "kix-test-1")
	for _, comp := range []Compression{None, XZ, Zstd} {
		t.Run(string(comp), func(t *testing.T) {
			url := serve(t, Options{Store: nix.NewLocalStore(), SigningKey: key, Compression: comp})
			root, err := copyFrom(t, url, key.Public(), hello)
			if err != nil {
				t.Fatalf("nix copy from kix cache: %v", err)
			}
			checkCopied(t, root, closure...)
			if os.Geteuid() != 0 {
				testenv.Missing(t, "root, which chroot needs")
			}
			out, err := exec.Command("chroot", root, hello+"/bin/hello").CombinedOutput()
			if err != nil || string(out) != "Hello, world!\n" {
				t.Errorf("hello in the fresh store: %q, %v", out, err)
			}
		})
	}
}

func TestNixRefusesUnsignedOrForeignKey(t *testing.T) {
	hello := fixture.Build(t, "hello")
	signer, other := newKey(t, "kix-test-1"), newKey(t, "kix-test-2")
	tests := []struct {
		name string
		key  *nix.SigningKey
	}{
		{"signed by a key Nix does not trust", signer},
		{"not signed", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := serve(t, Options{Store: nix.NewLocalStore(), SigningKey: tt.key})
			_, err := copyFrom(t, url, other.Public(), hello)
			if err == nil || !strings.Contains(err.Error(), "signature") {
				t.Fatalf("nix copy: got %v, want a refusal about signatures", err)
			}
			t.Logf("nix refused: %v", err)
		})
	}
}

// A folder written by Nix, served by kix cache, edited afterwards: Nix
// notices either edit.
func TestNixRefusesTamperedFolder(t *testing.T) {
	hello := fixture.Build(t, "hello")
	var greeting string
	for _, p := range fixture.Closure(t, hello) {
		if strings.HasSuffix(p, "-hello-greeting-1.0") {
			greeting = p
		}
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, bc *fixture.BinaryCache)
		want   string
	}{
		{"as Nix wrote it", func(*testing.T, *fixture.BinaryCache) {}, ""},
		{"NAR edited", func(t *testing.T, bc *fixture.BinaryCache) {
			editFile(t, narFileOf(t, bc.Dir, greeting), "Hello, world!", "Hello, wrold!")
		}, "hash mismatch"},
		{"narinfo NarSize edited", func(t *testing.T, bc *fixture.BinaryCache) {
			name := filepath.Join(bc.Dir, nix.HashPart(greeting)+".narinfo")
			data, _ := os.ReadFile(name)
			var size string
			for _, l := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(l, "NarSize: "); ok {
					size = v
				}
			}
			editFile(t, name, "NarSize: "+size, "NarSize: "+size+"0")
		}, "signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bc := fixture.NewBinaryCache(t, "none", hello)
			tt.tamper(t, bc)
			url := serve(t, Options{Dir: bc.Dir})
			root, err := copyFrom(t, url, bc.Key.Public, hello)
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want == "":
				checkCopied(t, root, hello, greeting)
			case err == nil || !strings.Contains(err.Error(), tt.want):
				t.Fatalf("nix copy: got %v, want an error about %q", err, tt.want)
			default:
				t.Logf("nix refused: %v", err)
			}
		})
	}
}

// Nix pushes a closure into an empty folder with the upload token from a
// netrc file; kix verifies and signs each narinfo, and another Nix copies
// the closure back out trusting only kix's key.
func TestNixPushes(t *testing.T) {
	hello := fixture.Build(t, "hello")
	closure := fixture.Closure(t, hello)
	key := newKey(t, "kix-push-1")
	dir := t.TempDir()
	url := serve(t, Options{Dir: dir, SigningKey: key, UploadToken: "s3cret"})
	host := strings.TrimPrefix(url, "http://")
	push := func(password string) (string, error) {
		netrc := filepath.Join(t.TempDir(), "netrc")
		entry := fmt.Sprintf("machine %s\nlogin kix\npassword %s\n", strings.Split(host, ":")[0], password)
		if err := os.WriteFile(netrc, []byte(entry), 0o600); err != nil {
			t.Fatal(err)
		}
		return nixCmd(t, "copy", "--to", url+"?compression=xz", "--option", "netrc-file", netrc, hello)
	}
	if out, err := push("wrong"); err == nil {
		t.Fatalf("push with a wrong token succeeded:\n%s", out)
	}
	if n := narinfoCount(t, dir); n != 0 {
		t.Fatalf("a refused push left %d narinfos", n)
	}
	if out, err := push("s3cret"); err != nil {
		t.Fatalf("nix copy --to kix cache: %v\n%s", err, out)
	}
	if n := narinfoCount(t, dir); n != len(closure) {
		t.Errorf("cache holds %d narinfos, want the %d of the closure", n, len(closure))
	}
	root, err := copyFrom(t, url, key.Public(), hello)
	if err != nil {
		t.Fatalf("copying back what was pushed: %v", err)
	}
	checkCopied(t, root, closure...)
	if left, _ := filepath.Glob(filepath.Join(dir, "*", ".upload-*")); len(left) > 0 {
		t.Errorf("uploads left temporary files: %v", left)
	}
}

func narinfoCount(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.narinfo"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func narFileOf(t *testing.T, dir, path string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, nix.HashPart(path)+".narinfo"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if u, ok := strings.CutPrefix(l, "URL: "); ok {
			return filepath.Join(dir, u)
		}
	}
	t.Fatalf("narinfo of %s has no URL", path)
	return ""
}

func editFile(t *testing.T, name, old, repl string) {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%s does not contain %q", name, old)
	}
	if err := os.WriteFile(name, bytes.Replace(data, []byte(old), []byte(repl), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}
