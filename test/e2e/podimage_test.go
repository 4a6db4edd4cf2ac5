package e2e

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// kixPodImage is an image that runs kix in a pod as deploy/default.nix
// expects: kix and Nix outside /nix, with the shared libraries they load,
// and busybox. It is made from this machine's files (Debian's nix-bin and
// busybox-static); a real deployment builds the same with Nix.
func kixPodImage(t *testing.T) v1.Image {
	t.Helper()
	files := map[string]string{ // path in the image -> file here
		"usr/local/bin/kix": kix,
		"usr/bin/nix":       "/usr/bin/nix",
		"usr/bin/busybox":   "/usr/bin/busybox",
	}
	// busybox is also mount(8) and umount(8) for kix csi.
	links := map[string]string{"bin/sh": "/usr/bin/busybox", "usr/bin/mount": "busybox", "usr/bin/umount": "busybox",
		"usr/libexec/nix/build-remote": "../../bin/nix"}
	for _, tool := range []string{"nix-build", "nix-store", "nix-instantiate", "nix-env", "nix-hash"} {
		links["usr/bin/"+tool] = "nix"
	}
	for _, bin := range []string{kix, "/usr/bin/nix"} {
		for _, lib := range sharedLibraries(t, bin) {
			files[lib[1:]] = lib
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	addDirs := func(p string) {
		var parents []string
		for d := filepath.Dir(p); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: parents[i] + "/", Mode: 0o755, ModTime: epoch}))
		}
	}
	for _, d := range []string{"tmp", "root", "etc"} {
		dirs[d] = true
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: epoch}))
	}
	for _, f := range []struct{ name, content string }{
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"},
		{"etc/group", "root:x:0:\n"},
	} {
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.content)), ModTime: epoch}))
		_, err := tw.Write([]byte(f.content))
		must(t, err)
	}
	for _, name := range sortedKeys(files) {
		data, err := os.ReadFile(files[name])
		must(t, err)
		addDirs(name)
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(data)), ModTime: epoch}))
		_, err = tw.Write(data)
		must(t, err)
	}
	for _, name := range sortedKeys(links) {
		addDirs(name)
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: links[name], ModTime: epoch}))
	}
	must(t, tw.Close())
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	})
	must(t, err)
	img, err := mutate.AppendLayers(empty.Image, layer)
	must(t, err)
	cf, err := img.ConfigFile()
	must(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root"}
	cf.Config.Entrypoint = []string{"/usr/local/bin/kix"}
	img, err = mutate.ConfigFile(img, cf)
	must(t, err)
	return img
}

var lddPath = regexp.MustCompile(`(?m)(/\S+) \(0x`)

// sharedLibraries lists the libraries (and loader) a binary loads, as ldd
// prints them; none for a static binary.
func sharedLibraries(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		return nil // "not a dynamic executable"
	}
	var libs []string
	for _, m := range lddPath.FindAllStringSubmatch(string(out), -1) {
		libs = append(libs, m[1])
	}
	return libs
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
