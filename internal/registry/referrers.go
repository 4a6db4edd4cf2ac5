package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kix-project/kix/internal/image"
	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/internal/sbom"
	"github.com/kix-project/kix/internal/version"
)

// Every image manifest the registry serves has one referrer: an OCI 1.1
// artifact manifest holding the CycloneDX SBOM of the image's closure,
//
//	{
//	  "mediaType": "application/vnd.oci.image.manifest.v1+json",
//	  "artifactType": "application/vnd.cyclonedx+json",
//	  "config": {the empty descriptor: application/vnd.oci.empty.v1+json, "{}"},
//	  "layers": [{"mediaType": "application/vnd.cyclonedx+json", the SBOM}],
//	  "subject": {the image manifest's descriptor}
//	}
//
// listed by GET /v2/<name>/referrers/<image manifest digest> and fetched,
// with its SBOM, by digest from the same repository. The SBOM is made from
// the closure the image was built from (no Nix expression, so no licences)
// and, when the registry serves the local store, the derivations there
// (pname, version, patches): it is what `kix sbom <store path>` prints. It
// is deterministic, so the same image always has the same referrer while
// its derivations stay in the store. Images read from archives have no
// closure, and no referrer.

// emptyJSON is the OCI empty descriptor's content.
var emptyJSON = []byte("{}")

// referrer is the SBOM artifact of one manifest.
type referrer struct {
	subject  v1.Hash
	manifest image.Manifest
	blobs    []v1.Hash // the SBOM and the empty config
}

func (r *referrer) descriptor() v1.Descriptor {
	return v1.Descriptor{
		MediaType:    r.manifest.MediaType,
		Size:         int64(len(r.manifest.Raw)),
		Digest:       r.manifest.Digest,
		ArtifactType: sbom.CycloneDXMediaType,
	}
}

// referrersOf returns the referrers of every image manifest of an
// artifact, making them the first time.
func (reg *Registry) referrersOf(a *image.Artifact) ([]*referrer, error) {
	var out []*referrer
	for _, img := range a.Images() {
		if len(img.Closure) == 0 {
			continue
		}
		subjects := []image.Manifest{img.OCI}
		if img.Docker != nil {
			subjects = append(subjects, *img.Docker)
		}
		for _, m := range subjects {
			r, err := reg.referrer(img, m)
			if err != nil {
				return nil, fmt.Errorf("SBOM of %s: %w", m.Digest, err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func (reg *Registry) referrer(img *image.Image, subject image.Manifest) (*referrer, error) {
	if r, ok := reg.referrers.Load(subject.Digest); ok && reg.cached(r.(*referrer)) {
		return r.(*referrer), nil
	}
	d, err := sbom.FromClosure(img.Roots, img.Closure)
	if err != nil {
		return nil, err
	}
	// The local store holds the derivers of what it built: the SBOM then
	// says what kix sbom says of the same store path. A binary cache
	// serves no derivations.
	var src sbom.Sources
	if _, local := reg.opts.Builder.Store.(*nix.LocalStore); local {
		src.Derivations = nix.ReadDerivation
	}
	if err := d.Enrich(src); err != nil {
		return nil, err
	}
	d.Tool = sbom.Tool{Name: "kix", Version: version.Get().Version}
	var doc bytes.Buffer
	if err := sbom.EncodeCycloneDX(&doc, d); err != nil {
		return nil, err
	}
	cache := reg.opts.Builder.Cache
	docDigest, err := cache.Put(doc.Bytes())
	if err != nil {
		return nil, err
	}
	emptyDigest, err := cache.Put(emptyJSON)
	if err != nil {
		return nil, err
	}
	m, err := cache.PutManifest(types.OCIManifestSchema1, v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  sbom.CycloneDXMediaType,
		Config:        v1.Descriptor{MediaType: types.OCIEmptyJSON, Size: int64(len(emptyJSON)), Digest: emptyDigest},
		Layers:        []v1.Descriptor{{MediaType: sbom.CycloneDXMediaType, Size: int64(doc.Len()), Digest: docDigest}},
		Subject:       &v1.Descriptor{MediaType: subject.MediaType, Size: int64(len(subject.Raw)), Digest: subject.Digest},
	})
	if err != nil {
		return nil, err
	}
	r := &referrer{subject: subject.Digest, manifest: m, blobs: []v1.Hash{docDigest, emptyDigest}}
	reg.referrers.Store(subject.Digest, r)
	return r, nil
}

// cached reports whether the cache still holds a referrer's blobs.
func (reg *Registry) cached(r *referrer) bool {
	for _, b := range r.blobs {
		if _, ok := reg.opts.Builder.Cache.Stat(b); !ok {
			return false
		}
	}
	return true
}

// serveReferrers answers the OCI 1.1 referrers API: an index of the
// artifacts that refer to a manifest, filtered by ?artifactType=.
func (reg *Registry) serveReferrers(w http.ResponseWriter, r *http.Request, name repoName, ref string) error {
	d, err := v1.NewHash(ref)
	if err != nil {
		return errorf(http.StatusBadRequest, codeDigestInvalid, "invalid digest %q: %v", ref, err)
	}
	a, err := reg.resolve(r.Context(), name)
	if err != nil {
		return err
	}
	// A digest nothing refers to (not this image's, or a referrer's own)
	// has an empty list: the API must not answer 404, or clients fall
	// back to the sha256-<hex> tag, which any tag here serves as the image.
	refs, err := reg.referrersOf(a)
	if err != nil {
		return errorf(http.StatusInternalServerError, codeUnknown, "%s: %v", name.raw, err)
	}
	filter, filtered := r.URL.Query()["artifactType"]
	for i, f := range filter {
		// Media types hold no spaces: a space is an unescaped '+'.
		filter[i] = strings.ReplaceAll(f, " ", "+")
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
	for _, ref := range refs {
		if ref.subject != d || filtered && !slices.Contains(filter, sbom.CycloneDXMediaType) {
			continue
		}
		idx.Manifests = append(idx.Manifests, ref.descriptor())
	}
	body, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if filtered {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return writeJSON(w, r, string(types.OCIImageIndex), string(body))
}

// referrerManifest finds a referrer's manifest by digest.
func referrerManifest(refs []*referrer, d v1.Hash) (image.Manifest, bool) {
	for _, r := range refs {
		if r.manifest.Digest == d {
			return r.manifest, true
		}
	}
	return image.Manifest{}, false
}

// isReferrerBlob reports whether d is the SBOM or config of a referrer.
func isReferrerBlob(refs []*referrer, d v1.Hash) bool {
	for _, r := range refs {
		if slices.Contains(r.blobs, d) {
			return true
		}
	}
	return false
}
