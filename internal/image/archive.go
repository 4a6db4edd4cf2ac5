package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kix-project/kix/internal/nix"
)

// fromArchive serves the image inside a docker-archive or OCI archive
// store path (.tar, or gzip-compressed .tar.gz). Docker archive layers are
// recompressed as kix compresses layers; an OCI archive's blobs are served
// as they are, after checking each against its digest.
func (b *Builder) fromArchive(ctx context.Context, storePath string) (*Artifact, error) {
	tmp, err := b.unpackArchive(ctx, storePath)
	if err != nil {
		return nil, fmt.Errorf("reading image archive %s: %w", storePath, err)
	}
	defer os.Remove(tmp)
	oci, err := hasEntry(tmp, "oci-layout")
	if err != nil {
		return nil, fmt.Errorf("reading image archive %s: %w", storePath, err)
	}
	a := &Artifact{StorePath: storePath}
	if oci {
		err = b.fromOCIArchive(tmp, a)
	} else {
		a.Image, err = b.fromDockerArchive(tmp)
	}
	if err != nil {
		return nil, fmt.Errorf("image archive %s: %w", storePath, err)
	}
	for _, img := range a.Images() {
		img.Roots = []string{storePath}
	}
	return a, nil
}

// unpackArchive copies the archive out of the store into a temporary file,
// decompressed, and returns the file's name.
func (b *Builder) unpackArchive(ctx context.Context, storePath string) (string, error) {
	files, err := nix.Files(ctx, b.Store, storePath)
	if err != nil {
		return "", err
	}
	defer files.Close()
	if _, err := files.Next(); err != nil {
		return "", err
	}
	br := bufio.NewReader(files)
	var r io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return "", err
		}
		defer zr.Close()
		r = zr
	}
	tmp, err := os.CreateTemp(b.Cache.tmpDir(), "archive-")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

func hasEntry(archive, name string) (bool, error) {
	found := false
	err := eachEntry(archive, func(h *tar.Header, _ io.Reader) error {
		if strings.TrimPrefix(h.Name, "./") == name {
			found = true
		}
		return nil
	})
	return found, err
}

func eachEntry(archive string, fn func(*tar.Header, io.Reader) error) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(h, tr); err != nil {
			return err
		}
	}
}

func (b *Builder) fromDockerArchive(archive string) (*Image, error) {
	src, err := tarball.Image(func() (io.ReadCloser, error) { return os.Open(archive) }, nil)
	if err != nil {
		return nil, err
	}
	raw, err := src.RawConfigFile()
	if err != nil {
		return nil, err
	}
	cf, err := src.ConfigFile()
	if err != nil {
		return nil, err
	}
	srcLayers, err := src.Layers()
	if err != nil {
		return nil, err
	}
	c := b.compression()
	img := &Image{Config: raw, Platform: v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}}
	for i, sl := range srcLayers {
		l, err := b.recompress(sl, c)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		img.Layers = append(img.Layers, l)
	}
	if img.ConfigDigest, err = b.Cache.Put(raw); err != nil {
		return nil, err
	}
	return img, writeManifests(b.Cache, img)
}

// recompress stores a layer compressed with c, checking its diff ID.
func (b *Builder) recompress(sl v1.Layer, c Compression) (Layer, error) {
	want, err := sl.DiffID()
	if err != nil {
		return Layer{}, err
	}
	rc, err := sl.Uncompressed()
	if err != nil {
		return Layer{}, err
	}
	defer rc.Close()
	l, err := storeLayer(b.Cache, c, func(w io.Writer) error {
		_, err := io.Copy(w, rc)
		return err
	})
	if err != nil {
		return Layer{}, err
	}
	if l.DiffID != want {
		return Layer{}, fmt.Errorf("content is %s, the config says %s", l.DiffID, want)
	}
	return l, nil
}

// fromOCIArchive copies the archive's blobs into the cache and serves the
// manifest (or index) its index.json names.
func (b *Builder) fromOCIArchive(archive string, a *Artifact) error {
	var index []byte
	err := eachEntry(archive, func(h *tar.Header, r io.Reader) error {
		name := strings.TrimPrefix(h.Name, "./")
		switch {
		case name == "index.json":
			var err error
			index, err = io.ReadAll(io.LimitReader(r, maxSpecSize))
			return err
		case strings.HasPrefix(name, "blobs/sha256/") && h.Typeflag == tar.TypeReg:
			want, err := v1.NewHash("sha256:" + strings.TrimPrefix(name, "blobs/sha256/"))
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			got, _, err := b.Cache.Write(func(w io.Writer) error { _, err := io.Copy(w, r); return err })
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("blob %s holds content with digest %s", name, got)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if index == nil {
		return errors.New("no index.json")
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(index, &idx); err != nil {
		return fmt.Errorf("index.json: %w", err)
	}
	if len(idx.Manifests) != 1 {
		return fmt.Errorf("index.json names %d manifests; kix serves archives holding one image or one index", len(idx.Manifests))
	}
	d := idx.Manifests[0]
	raw, err := b.Cache.ReadAll(d.Digest)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	m := Manifest{MediaType: d.MediaType, Raw: raw, Digest: d.Digest}
	if d.MediaType.IsIndex() {
		a.Index, err = b.indexFromCache(m)
	} else {
		a.Image, err = b.imageFromCache(m)
	}
	return err
}

func (b *Builder) indexFromCache(m Manifest) (*Index, error) {
	var im v1.IndexManifest
	if err := json.Unmarshal(m.Raw, &im); err != nil {
		return nil, fmt.Errorf("index %s: %w", m.Digest, err)
	}
	idx := &Index{OCI: m}
	for _, d := range im.Manifests {
		raw, err := b.Cache.ReadAll(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
		img, err := b.imageFromCache(Manifest{MediaType: d.MediaType, Raw: raw, Digest: d.Digest})
		if err != nil {
			return nil, err
		}
		idx.Images = append(idx.Images, img)
	}
	return idx, nil
}

// imageFromCache describes an image whose manifest and blobs are cached.
func (b *Builder) imageFromCache(m Manifest) (*Image, error) {
	if !m.MediaType.IsImage() {
		return nil, fmt.Errorf("manifest %s has media type %s, not an image", m.Digest, m.MediaType)
	}
	var im v1.Manifest
	if err := json.Unmarshal(m.Raw, &im); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.Digest, err)
	}
	raw, err := b.Cache.ReadAll(im.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", im.Config.Digest, err)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", im.Config.Digest, err)
	}
	if len(cf.RootFS.DiffIDs) != len(im.Layers) {
		return nil, fmt.Errorf("manifest %s has %d layers, its config %d", m.Digest, len(im.Layers), len(cf.RootFS.DiffIDs))
	}
	img := &Image{
		Platform:     v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant},
		Config:       raw,
		ConfigDigest: im.Config.Digest,
	}
	for i, l := range im.Layers {
		if _, ok := b.Cache.Stat(l.Digest); !ok {
			return nil, fmt.Errorf("layer %s is not in the archive", l.Digest)
		}
		img.Layers = append(img.Layers, Layer{Digest: l.Digest, DiffID: cf.RootFS.DiffIDs[i], Size: l.Size, MediaType: l.MediaType})
	}
	img.OCI = m // as archived: OCI, or occasionally Docker schema 2
	return img, nil
}
