package image

import (
	"encoding/json"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kix-project/kix/internal/nix"
)

// Manifest is a serialised manifest or index with its digest. Its bytes are
// also in the BlobCache.
type Manifest struct {
	MediaType types.MediaType
	Raw       []byte
	Digest    v1.Hash
}

// Layer describes a layer blob in the cache.
type Layer struct {
	Digest    v1.Hash         `json:"digest"`
	DiffID    v1.Hash         `json:"diffID"`
	Size      int64           `json:"size"`
	MediaType types.MediaType `json:"mediaType"`
	// DockerMediaType is the layer's type in a Docker schema 2 manifest,
	// empty if Docker has none for it (zstd).
	DockerMediaType types.MediaType `json:"dockerMediaType,omitempty"`
}

// Image is an assembled image: every blob it names is in the cache.
type Image struct {
	Platform     v1.Platform
	Config       []byte
	ConfigDigest v1.Hash
	Layers       []Layer
	OCI          Manifest  // the image's manifest (as archived, for images read from an archive)
	Docker       *Manifest // its Docker schema 2 form; nil when the layers have none

	// Roots are the store paths the image was made from; Closure their
	// runtime closure (empty for images read from an archive).
	Roots   []string
	Closure []*nix.PathInfo
}

// Index is an image per platform.
type Index struct {
	Images []*Image
	OCI    Manifest
	Docker *Manifest // nil unless every image has a Docker manifest
}

// Artifact is what a store path serves: an image, or an index of images.
type Artifact struct {
	StorePath string
	Image     *Image
	Index     *Index
}

// Manifest returns the top-level manifest in the flavour the client
// prefers: Docker schema 2 if docker is set and the artifact has one, OCI
// otherwise.
func (a *Artifact) Manifest(docker bool) Manifest {
	switch {
	case a.Image != nil && docker && a.Image.Docker != nil:
		return *a.Image.Docker
	case a.Image != nil:
		return a.Image.OCI
	case docker && a.Index.Docker != nil:
		return *a.Index.Docker
	}
	return a.Index.OCI
}

// ManifestByDigest finds any manifest of the artifact (top level or a
// platform's) by digest.
func (a *Artifact) ManifestByDigest(d v1.Hash) (Manifest, bool) {
	for _, m := range a.Manifests() {
		if m.Digest == d {
			return m, true
		}
	}
	return Manifest{}, false
}

// Manifests returns every manifest of the artifact: its top-level ones,
// and for an index those of its images.
func (a *Artifact) Manifests() []Manifest {
	var ms []Manifest
	add := func(img *Image) {
		ms = append(ms, img.OCI)
		if img.Docker != nil {
			ms = append(ms, *img.Docker)
		}
	}
	if a.Image != nil {
		add(a.Image)
		return ms
	}
	ms = append(ms, a.Index.OCI)
	if a.Index.Docker != nil {
		ms = append(ms, *a.Index.Docker)
	}
	for _, img := range a.Index.Images {
		add(img)
	}
	return ms
}

// Images returns the artifact's images.
func (a *Artifact) Images() []*Image {
	if a.Image != nil {
		return []*Image{a.Image}
	}
	return a.Index.Images
}

// Blobs returns the digest of every blob the artifact names: configs and
// layers (manifests are not blobs).
func (a *Artifact) Blobs() []v1.Hash {
	var hs []v1.Hash
	for _, img := range a.Images() {
		hs = append(hs, img.ConfigDigest)
		for _, l := range img.Layers {
			hs = append(hs, l.Digest)
		}
	}
	return hs
}

// cachedSize is what the artifact keeps in the blob cache: its configs,
// layers and manifests, each blob once however many images name it.
func (a *Artifact) cachedSize() int64 {
	sizes := map[v1.Hash]int64{}
	for _, img := range a.Images() {
		sizes[img.ConfigDigest] = int64(len(img.Config))
		for _, l := range img.Layers {
			sizes[l.Digest] = l.Size
		}
	}
	for _, m := range a.Manifests() {
		sizes[m.Digest] = int64(len(m.Raw))
	}
	var n int64
	for _, size := range sizes {
		n += size
	}
	return n
}

// writeManifests serialises an image's OCI manifest and, if its layers
// allow, a Docker schema 2 one, and stores both in the cache.
func writeManifests(cache *BlobCache, img *Image) error {
	oci := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(img.Config)), Digest: img.ConfigDigest},
	}
	docker := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.DockerManifestSchema2,
		Config:        v1.Descriptor{MediaType: types.DockerConfigJSON, Size: int64(len(img.Config)), Digest: img.ConfigDigest},
	}
	dockerOK := true
	for _, l := range img.Layers {
		oci.Layers = append(oci.Layers, v1.Descriptor{MediaType: l.MediaType, Size: l.Size, Digest: l.Digest})
		if l.DockerMediaType == "" {
			dockerOK = false
		}
		docker.Layers = append(docker.Layers, v1.Descriptor{MediaType: l.DockerMediaType, Size: l.Size, Digest: l.Digest})
	}
	m, err := cache.PutManifest(types.OCIManifestSchema1, oci)
	if err != nil {
		return err
	}
	img.OCI = m
	if dockerOK {
		m, err := cache.PutManifest(types.DockerManifestSchema2, docker)
		if err != nil {
			return err
		}
		img.Docker = &m
	}
	return nil
}

// newIndex makes an index of images, OCI and (if all images have one)
// Docker manifest list.
func newIndex(cache *BlobCache, images []*Image) (*Index, error) {
	oci := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	docker := v1.IndexManifest{SchemaVersion: 2, MediaType: types.DockerManifestList}
	dockerOK := true
	for _, img := range images {
		p := img.Platform
		oci.Manifests = append(oci.Manifests, v1.Descriptor{
			MediaType: img.OCI.MediaType, Size: int64(len(img.OCI.Raw)), Digest: img.OCI.Digest, Platform: &p,
		})
		if img.Docker == nil {
			dockerOK = false
			continue
		}
		docker.Manifests = append(docker.Manifests, v1.Descriptor{
			MediaType: img.Docker.MediaType, Size: int64(len(img.Docker.Raw)), Digest: img.Docker.Digest, Platform: &p,
		})
	}
	idx := &Index{Images: images}
	var err error
	if idx.OCI, err = cache.PutManifest(types.OCIImageIndex, oci); err != nil {
		return nil, err
	}
	if dockerOK {
		m, err := cache.PutManifest(types.DockerManifestList, docker)
		if err != nil {
			return nil, err
		}
		idx.Docker = &m
	}
	return idx, nil
}

// PutManifest serialises a manifest or index of media type mt and stores
// it.
func (c *BlobCache) PutManifest(mt types.MediaType, v any) (Manifest, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return Manifest{}, err
	}
	d, err := c.Put(raw)
	if err != nil {
		return Manifest{}, err
	}
	return Manifest{MediaType: mt, Raw: raw, Digest: d}, nil
}

// CheckSystem reports whether kix can make images for a Nix system.
func CheckSystem(system string) error {
	_, err := platformOf(system)
	return err
}

// platformOf maps a Nix system ("x86_64-linux") to an OCI platform.
func platformOf(system string) (v1.Platform, error) {
	arch, os, ok := strings.Cut(system, "-")
	if !ok || os != "linux" {
		return v1.Platform{}, fmt.Errorf("unsupported system %q (want <arch>-linux)", system)
	}
	p := v1.Platform{OS: "linux"}
	switch arch {
	case "x86_64":
		p.Architecture = "amd64"
	case "aarch64":
		p.Architecture, p.Variant = "arm64", "v8"
	case "i686":
		p.Architecture = "386"
	case "armv7l":
		p.Architecture, p.Variant = "arm", "v7"
	case "armv6l":
		p.Architecture, p.Variant = "arm", "v6"
	case "riscv64", "s390x":
		p.Architecture = arch
	case "powerpc64le":
		p.Architecture = "ppc64le"
	default:
		return v1.Platform{}, fmt.Errorf("unsupported system %q", system)
	}
	return p, nil
}
