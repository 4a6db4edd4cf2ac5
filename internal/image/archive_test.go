package image

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/test/fixture"
)

// helloV1 is the fixture hello as a go-containerregistry image, to write
// archives from.
func helloV1(t *testing.T) v1.Image {
	t.Helper()
	b := newBuilder(t, nix.NewLocalStore())
	a := build(t, b, fixture.Build(t, "hello"))
	img, _, err := a.V1(b.Cache, false)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func diffIDs(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf.RootFS.DiffIDs
}

func TestDockerArchive(t *testing.T) {
	src := helloV1(t)
	for _, gz := range []bool{false, true} {
		name := map[bool]string{false: "hello-docker.tar", true: "hello-docker.tar.gz"}[gz]
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), name)
			tag, _ := nameTag("kix.local/hello:1")
			if err := tarball.WriteToFile(file+".plain", tag, src); err != nil {
				t.Fatal(err)
			}
			copyMaybeGzip(t, file+".plain", file, gz)
			storePath := fixture.AddToStore(t, file)

			b := newBuilder(t, nix.NewLocalStore())
			a := build(t, b, storePath)
			validateArtifact(t, b, a)
			img, _, _ := a.V1(b.Cache, false)
			if diff := cmp.Diff(diffIDs(t, src), diffIDs(t, img)); diff != "" {
				t.Errorf("diff IDs (-archived +served):\n%s", diff)
			}
			rawSrc, _ := src.RawConfigFile()
			if diff := cmp.Diff(string(rawSrc), string(a.Image.Config)); diff != "" {
				t.Errorf("config (-archived +served):\n%s", diff)
			}
		})
	}
}

func nameTag(s string) (*name.Tag, error) {
	tag, err := name.NewTag(s)
	return &tag, err
}

// An OCI archive's blobs are served as they are, so the manifest digest is
// the archived one.
func TestOCIArchive(t *testing.T) {
	src := helloV1(t)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(src); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "hello-oci.tar")
	tarFolder(t, dir, file)
	storePath := fixture.AddToStore(t, file)

	b := newBuilder(t, nix.NewLocalStore())
	a := build(t, b, storePath)
	validateArtifact(t, b, a)
	want, _ := src.Digest()
	if a.Image.OCI.Digest != want {
		t.Errorf("served manifest %s, archived %s", a.Image.OCI.Digest, want)
	}
}

func TestBrokenArchives(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.tar")
	if err := os.WriteFile(garbage, []byte("not a tar file at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	emptyLayout := t.TempDir()
	if _, err := layout.Write(emptyLayout, empty.Index); err != nil {
		t.Fatal(err)
	}
	noImages := filepath.Join(dir, "no-images-oci.tar")
	tarFolder(t, emptyLayout, noImages)
	b := newBuilder(t, nix.NewLocalStore())
	for _, f := range []string{garbage, noImages} {
		storePath := fixture.AddToStore(t, f)
		if _, err := b.Build(t.Context(), storePath); err == nil {
			t.Errorf("Build(%s) succeeded", filepath.Base(f))
		} else {
			t.Logf("%s: %v", filepath.Base(f), err)
		}
	}
}

func copyMaybeGzip(t *testing.T, from, to string, gz bool) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	var w io.WriteCloser = out
	if gz {
		w = gzip.NewWriter(out)
	}
	if _, err := io.Copy(w, in); err != nil {
		t.Fatal(err)
	}
	if gz {
		w.Close()
	}
	out.Close()
}

func tarFolder(t *testing.T, dir, file string) {
	t.Helper()
	out, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	tw := tar.NewWriter(out)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = rel
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}
