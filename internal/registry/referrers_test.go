package registry

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/internal/sbom"
	"github.com/kix-project/kix/test/fixture"
)

const emptyDescriptorDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

// sbomReferrer finds the SBOM referrer of an image with go-containerregistry
// and returns its descriptor and manifest.
func sbomReferrer(t *testing.T, reg *testRegistry, repo string, subject v1.Hash) (v1.Descriptor, *v1.Manifest) {
	t.Helper()
	d, err := name.NewDigest(reg.host+"/"+repo+"@"+subject.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Referrers(d)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("referrers of %s: %+v, want one SBOM", subject, im.Manifests)
	}
	desc := im.Manifests[0]
	got, err := remote.Get(d.Context().Digest(desc.Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(got.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	return desc, &m
}

func TestSBOMReferrer(t *testing.T) {
	hello := fixture.Build(t, "hello")
	reg := newRegistry(t, nix.NewLocalStore())
	repo := nix.BaseName(hello)
	img, err := remote.Image(reg.ref(t, repo))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := img.Digest()
	subjectSize, _ := img.Size()

	desc, m := sbomReferrer(t, reg, repo, subject)
	if desc.ArtifactType != sbom.CycloneDXMediaType || desc.MediaType != types.OCIManifestSchema1 {
		t.Errorf("referrer descriptor %+v", desc)
	}
	want := &v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  sbom.CycloneDXMediaType,
		Config:        v1.Descriptor{MediaType: types.OCIEmptyJSON, Size: 2, Digest: v1.Hash{Algorithm: "sha256", Hex: emptyDescriptorDigest[7:]}},
		Layers:        []v1.Descriptor{{MediaType: sbom.CycloneDXMediaType, Size: m.Layers[0].Size, Digest: m.Layers[0].Digest}},
		Subject:       &v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: subjectSize, Digest: subject},
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("artifact manifest (-want +got):\n%s", diff)
	}

	// The SBOM, fetched from the same repository, lists the closure.
	layer, err := remote.Layer(reg.ref(t, repo).Context().Digest(m.Layers[0].Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(rc, cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, c := range *bom.Components {
		paths = append(paths, c.BOMRef)
	}
	if diff := cmp.Diff(fixture.Closure(t, hello), paths); diff != "" {
		t.Errorf("SBOM components (-nix-store -qR +got):\n%s", diff)
	}
	config, err := remote.Layer(reg.ref(t, repo).Context().Digest(emptyDescriptorDigest))
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := config.Compressed(); err != nil {
		t.Error(err)
	} else if b, _ := io.ReadAll(rc); string(b) != "{}" {
		t.Errorf("empty config blob %q", b)
	}

	// Same image, another registry with an empty cache: same referrer.
	other := newRegistry(t, nix.NewLocalStore())
	if again, _ := sbomReferrer(t, other, repo, subject); again.Digest != desc.Digest {
		t.Errorf("referrer digest %s, then %s: not deterministic", desc.Digest, again.Digest)
	}
}

func TestReferrersFilterAndScope(t *testing.T) {
	hello := fixture.Build(t, "hello")
	busybox := fixture.Build(t, "busybox")
	reg := newRegistry(t, nix.NewLocalStore())
	repo := nix.BaseName(hello)
	img, err := remote.Image(reg.ref(t, repo))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := img.Digest()
	desc, _ := sbomReferrer(t, reg, repo, subject)
	path := "/v2/" + repo + "/referrers/" + subject.String()

	for query, want := range map[string]int{
		"?artifactType=" + sbom.CycloneDXMediaType: 1,
		"?artifactType=application/spdx%2Bjson":    0,
	} {
		status, h, body := reg.get(t, "GET", path+query, nil)
		var idx v1.IndexManifest
		if err := json.Unmarshal(body, &idx); err != nil || status != 200 {
			t.Fatalf("%s: %d %s", query, status, body)
		}
		if len(idx.Manifests) != want || h.Get("OCI-Filters-Applied") != "artifactType" {
			t.Errorf("%s: %d manifests, OCI-Filters-Applied %q; want %d, artifactType", query, len(idx.Manifests), h.Get("OCI-Filters-Applied"), want)
		}
	}

	// A digest nothing refers to, the referrer's own included, has an
	// empty list, never a 404.
	for _, d := range []v1.Hash{desc.Digest, {Algorithm: "sha256", Hex: strings.Repeat("0", 64)}} {
		status, _, body := reg.get(t, "GET", "/v2/"+repo+"/referrers/"+d.String(), nil)
		var idx v1.IndexManifest
		if err := json.Unmarshal(body, &idx); err != nil || status != 200 || len(idx.Manifests) != 0 {
			t.Errorf("referrers of %s: %d %s; want 200 and an empty index", d, status, body)
		}
	}

	// The Docker form of the image manifest has its own referrer.
	status, _, body := reg.get(t, "GET", "/v2/"+repo+"/manifests/latest", map[string]string{"Accept": string(types.DockerManifestSchema2)})
	if status != 200 {
		t.Fatalf("docker manifest: %d", status)
	}
	dockerDigest, _, _ := v1.SHA256(bytes.NewReader(body))
	if d, _ := sbomReferrer(t, reg, repo, dockerDigest); d.Digest == desc.Digest {
		t.Errorf("the Docker manifest shares the OCI manifest's referrer")
	}

	// A repository serves only its own image's referrer.
	other := nix.BaseName(busybox)
	if _, err := remote.Image(reg.ref(t, other)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v2/" + other + "/manifests/" + desc.Digest.String(), "/v2/" + other + "/blobs/" + desc.Digest.String()} {
		if status, _, _ := reg.get(t, "GET", p, nil); status != 404 {
			t.Errorf("GET %s: %d, want 404", p, status)
		}
	}
	if status, _, _ := reg.get(t, "GET", "/v2/"+repo+"/manifests/"+desc.Digest.String(), nil); status != 200 {
		t.Errorf("the referrer manifest by digest: %d, want 200", status)
	}
}
