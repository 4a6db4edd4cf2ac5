package image

import (
	"bytes"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// V1 returns the artifact as a go-containerregistry image or index (the
// other return is nil), reading blobs from the cache: what `kix push`
// writes to a registry and what tests validate.
func (a *Artifact) V1(cache *BlobCache, docker bool) (v1.Image, v1.ImageIndex, error) {
	if a.Image != nil {
		img, err := v1Image(cache, a.Image, a.Manifest(docker))
		return img, nil, err
	}
	return nil, &cachedIndex{cache: cache, a: a, m: a.Manifest(docker)}, nil
}

func v1Image(cache *BlobCache, img *Image, m Manifest) (v1.Image, error) {
	return partial.CompressedToImage(&cachedImage{cache: cache, img: img, m: m})
}

type cachedImage struct {
	cache *BlobCache
	img   *Image
	m     Manifest
}

func (c *cachedImage) RawConfigFile() ([]byte, error)      { return c.img.Config, nil }
func (c *cachedImage) MediaType() (types.MediaType, error) { return c.m.MediaType, nil }
func (c *cachedImage) RawManifest() ([]byte, error)        { return c.m.Raw, nil }

func (c *cachedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == c.img.ConfigDigest {
		return &cachedBlob{cache: c.cache, digest: h, size: int64(len(c.img.Config)), mediaType: types.OCIConfigJSON}, nil
	}
	for _, l := range c.img.Layers {
		if l.Digest == h {
			mt := l.MediaType
			if c.m.MediaType == types.DockerManifestSchema2 && l.DockerMediaType != "" {
				mt = l.DockerMediaType
			}
			return &cachedBlob{cache: c.cache, digest: h, size: l.Size, mediaType: mt}, nil
		}
	}
	return nil, fmt.Errorf("image has no blob %s", h)
}

type cachedBlob struct {
	cache     *BlobCache
	digest    v1.Hash
	size      int64
	mediaType types.MediaType
}

func (b *cachedBlob) Digest() (v1.Hash, error)            { return b.digest, nil }
func (b *cachedBlob) Size() (int64, error)                { return b.size, nil }
func (b *cachedBlob) MediaType() (types.MediaType, error) { return b.mediaType, nil }

func (b *cachedBlob) Compressed() (io.ReadCloser, error) {
	f, _, err := b.cache.Open(b.digest)
	return f, err
}

type cachedIndex struct {
	cache *BlobCache
	a     *Artifact
	m     Manifest
}

func (c *cachedIndex) MediaType() (types.MediaType, error) { return c.m.MediaType, nil }
func (c *cachedIndex) Digest() (v1.Hash, error)            { return c.m.Digest, nil }
func (c *cachedIndex) Size() (int64, error)                { return int64(len(c.m.Raw)), nil }
func (c *cachedIndex) RawManifest() ([]byte, error)        { return c.m.Raw, nil }

func (c *cachedIndex) IndexManifest() (*v1.IndexManifest, error) {
	return v1.ParseIndexManifest(bytes.NewReader(c.m.Raw))
}

func (c *cachedIndex) Image(h v1.Hash) (v1.Image, error) {
	for _, img := range c.a.Index.Images {
		if img.OCI.Digest == h {
			return v1Image(c.cache, img, img.OCI)
		}
		if img.Docker != nil && img.Docker.Digest == h {
			return v1Image(c.cache, img, *img.Docker)
		}
	}
	return nil, fmt.Errorf("index has no image %s", h)
}

func (c *cachedIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return nil, fmt.Errorf("index has no nested index %s", h)
}
