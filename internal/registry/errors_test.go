package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/test/fixture"
)

// Bad requests get the spec's status code and error body, never a 500, and
// never a byte of anything but the closure asked for.
func TestBadRequests(t *testing.T) {
	hello := fixture.Build(t, "hello")
	busybox := fixture.Build(t, "busybox")
	reg := newRegistry(t, nix.NewLocalStore())
	helloImg, err := remote.Image(reg.ref(t, nix.BaseName(hello)))
	if err != nil {
		t.Fatal(err)
	}
	other := fixture.Build(t, "webserver")
	otherImg, err := remote.Image(reg.ref(t, nix.BaseName(other)))
	if err != nil {
		t.Fatal(err)
	}
	otherOnly := layerNotIn(t, otherImg, helloImg)
	repo := "/v2/" + nix.BaseName(hello)
	zeros := "sha256:" + strings.Repeat("0", 64)
	for _, tt := range []struct {
		method, path string
		header       map[string]string
		status       int
		code         string
	}{
		{"GET", "/v2/00000000000000000000000000000000-missing/manifests/latest", nil, 404, "NAME_UNKNOWN"},
		{"GET", "/v2/00000000000000000000000000000000/manifests/latest", nil, 404, "NAME_UNKNOWN"},
		{"GET", "/v2/Hello/manifests/latest", nil, 400, "NAME_INVALID"},
		{"GET", "/v2/not-a-hash/manifests/latest", nil, 400, "NAME_INVALID"},
		{"GET", "/v2/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x/manifests/latest", nil, 400, "NAME_INVALID"},
		{"GET", "/v2/../../etc/passwd/manifests/latest", nil, 400, "NAME_INVALID"},
		{"GET", "/v2/" + nix.HashPart(hello) + "-hello-2.12.1/../x/manifests/latest", nil, 400, "NAME_INVALID"},
		{"GET", "/v2/%2e%2e/manifests/latest", nil, 400, "NAME_INVALID"},
		{"GET", "/v2/pkgs%2Fhello/manifests/latest", nil, 400, "NAME_INVALID"},
		{"GET", repo + "/manifests/-bad-tag", nil, 400, "MANIFEST_UNKNOWN"},
		{"GET", repo + "/manifests/" + zeros, nil, 404, "MANIFEST_UNKNOWN"},
		{"GET", repo + "/manifests/sha256:short", nil, 400, "DIGEST_INVALID"},
		{"GET", repo + "/blobs/" + zeros, nil, 404, "BLOB_UNKNOWN"},
		{"HEAD", repo + "/blobs/" + zeros, nil, 404, ""},
		{"GET", repo + "/blobs/sha256:xyz", nil, 400, "DIGEST_INVALID"},
		{"GET", repo + "/blobs/" + otherOnly.String(), nil, 404, "BLOB_UNKNOWN"},
		{"GET", repo + "/blobs/" + layerDigest(t, helloImg, 0).String(), map[string]string{"Range": "bytes=999999999-"}, 416, "RANGE_INVALID"},
		{"PUT", repo + "/manifests/latest", nil, 405, "UNSUPPORTED"},
		{"POST", repo + "/blobs/uploads/", nil, 404, "UNSUPPORTED"},
		{"DELETE", repo + "/blobs/" + zeros, nil, 405, "UNSUPPORTED"},
		{"GET", "/v2/_catalog", nil, 404, "UNSUPPORTED"},
		{"GET", "/v3/", nil, 404, "UNSUPPORTED"},
		{"GET", "/v2/pkgs/hello/manifests/latest", nil, 404, "NAME_UNKNOWN"}, // no package set
		{"GET", "/v2/" + nix.BaseName(busybox) + "x/manifests/latest", nil, 404, "NAME_UNKNOWN"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			status, h, body := reg.get(t, tt.method, tt.path, tt.header)
			if status != tt.status {
				t.Errorf("status %d, want %d; body %s", status, tt.status, body)
			}
			if tt.method == "HEAD" {
				return
			}
			var e errorResponse
			if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 || e.Errors[0].Code != tt.code {
				t.Errorf("body %s, want one error with code %s", body, tt.code)
			}
			if h.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", h.Get("Content-Type"))
			}
		})
	}
}

func layerDigest(t *testing.T, img v1.Image, i int) v1.Hash {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := layers[i].Digest()
	return d
}

// layerNotIn returns a layer digest of a that b lacks.
func layerNotIn(t *testing.T, a, b v1.Image) v1.Hash {
	t.Helper()
	la, _ := a.Layers()
	lb, _ := b.Layers()
	var have []v1.Hash
	for _, l := range lb {
		d, _ := l.Digest()
		have = append(have, d)
	}
	for _, l := range la {
		if d, _ := l.Digest(); !slices.Contains(have, d) {
			return d
		}
	}
	t.Fatal("the images share every layer")
	return v1.Hash{}
}

func TestRangeRequests(t *testing.T) {
	hello := fixture.Build(t, "hello")
	reg := newRegistry(t, nix.NewLocalStore())
	img, err := remote.Image(reg.ref(t, nix.BaseName(hello)))
	if err != nil {
		t.Fatal(err)
	}
	d := layerDigest(t, img, 0)
	_, _, whole := reg.get(t, "GET", "/v2/"+nix.BaseName(hello)+"/blobs/"+d.String(), nil)
	status, h, part := reg.get(t, "GET", "/v2/"+nix.BaseName(hello)+"/blobs/"+d.String(), map[string]string{"Range": "bytes=10-19"})
	if status != http.StatusPartialContent || string(part) != string(whole[10:20]) {
		t.Errorf("Range bytes=10-19: %d, %d bytes", status, len(part))
	}
	if want := fmt.Sprintf("bytes 10-19/%d", len(whole)); h.Get("Content-Range") != want {
		t.Errorf("Content-Range %q, want %q", h.Get("Content-Range"), want)
	}
}

func TestAuth(t *testing.T) {
	hello := fixture.Build(t, "hello")
	reg := newRegistry(t, nix.NewLocalStore(), func(o *Options) {
		o.Auth = &StaticAuth{Basic: map[string]string{"puller": "s3cret"}, Tokens: []string{"tok3n"}}
	})
	path := "/v2/" + nix.BaseName(hello) + "/manifests/latest"
	for _, tt := range []struct {
		name   string
		header map[string]string
		status int
	}{
		{"none", nil, 401},
		{"wrong password", map[string]string{"Authorization": "Basic cHVsbGVyOndyb25n"}, 401},
		{"basic", map[string]string{"Authorization": "Basic cHVsbGVyOnMzY3JldA=="}, 200},
		{"bearer", map[string]string{"Authorization": "Bearer tok3n"}, 200},
		{"wrong bearer", map[string]string{"Authorization": "Bearer nope"}, 401},
	} {
		status, h, _ := reg.get(t, "GET", path, tt.header)
		if status != tt.status {
			t.Errorf("%s: status %d, want %d", tt.name, status, tt.status)
		}
		if status == 401 && h.Get("WWW-Authenticate") != `Basic realm="kix"` {
			t.Errorf("%s: WWW-Authenticate %q", tt.name, h.Get("WWW-Authenticate"))
		}
	}
	// A real client with credentials pulls.
	img, err := remote.Image(reg.ref(t, nix.BaseName(hello)), remote.WithAuth(&authn.Basic{Username: "puller", Password: "s3cret"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Error(err)
	}
}
