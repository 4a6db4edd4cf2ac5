package registry

import (
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kix-project/kix/internal/image"
)

func (reg *Registry) serveManifest(w http.ResponseWriter, r *http.Request, name repoName, ref string) error {
	var byDigest *v1.Hash
	if strings.Contains(ref, ":") {
		d, err := v1.NewHash(ref)
		if err != nil {
			return errorf(http.StatusBadRequest, codeDigestInvalid, "invalid digest %q: %v", ref, err)
		}
		byDigest = &d
	} else if err := parseTag(ref); err != nil {
		return errorf(http.StatusBadRequest, codeManifestUnknown, "%v", err)
	}
	var a *image.Artifact
	var err error
	if byDigest != nil {
		a, err = reg.resolveDigest(r.Context(), name, *byDigest)
	} else {
		a, err = reg.resolve(r.Context(), name)
	}
	if err != nil {
		return err
	}
	m := a.Manifest(prefersDocker(r))
	if byDigest != nil {
		var ok bool
		if m, ok = a.ManifestByDigest(*byDigest); !ok {
			refs, err := reg.referrersOf(a)
			if err != nil {
				return errorf(http.StatusInternalServerError, codeUnknown, "%s: %v", name.raw, err)
			}
			m, ok = referrerManifest(refs, *byDigest)
		}
		if !ok {
			return errorf(http.StatusNotFound, codeManifestUnknown, "%s has no manifest %s", name.raw, byDigest)
		}
	}
	writeManifest(w, r, m)
	return nil
}

func writeManifest(w http.ResponseWriter, r *http.Request, m image.Manifest) {
	h := w.Header()
	h.Set("Content-Type", string(m.MediaType))
	h.Set("Content-Length", strconv.Itoa(len(m.Raw)))
	h.Set("Docker-Content-Digest", m.Digest.String())
	h.Set("Etag", `"`+m.Digest.String()+`"`)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(m.Raw)
	}
}

// prefersDocker reports whether a client asks for Docker schema 2 and not
// for OCI. Clients that accept both, or say nothing, get OCI.
func prefersDocker(r *http.Request) bool {
	var docker, oci bool
	for _, header := range r.Header.Values("Accept") {
		for _, part := range strings.Split(header, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			switch types.MediaType(mt) {
			case types.DockerManifestSchema2, types.DockerManifestList:
				docker = true
			case types.OCIManifestSchema1, types.OCIImageIndex:
				oci = true
			}
		}
	}
	return docker && !oci
}

func (reg *Registry) serveTags(w http.ResponseWriter, r *http.Request, name repoName) error {
	if _, err := reg.resolve(r.Context(), name); err != nil {
		return err
	}
	tags := []string{"latest"}
	if n := r.URL.Query().Get("n"); n != "" {
		limit, err := strconv.Atoi(n)
		if err != nil || limit < 0 {
			return errorf(http.StatusBadRequest, codeUnsupported, "invalid n=%q", n)
		}
		tags = tags[:min(limit, len(tags))]
	}
	if last := r.URL.Query().Get("last"); last != "" && last >= "latest" {
		tags = []string{}
	}
	return writeJSON(w, r, "application/json", fmt.Sprintf(`{"name":%q,"tags":%s}`, name.raw, jsonList(tags)))
}

func jsonList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(quoted, ",") + "]"
}

func writeJSON(w http.ResponseWriter, r *http.Request, contentType, body string) error {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write([]byte(body))
	return err
}
