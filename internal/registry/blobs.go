package registry

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kix-project/kix/internal/image"
)

// serveBlob serves a config or layer of the repository's artifact, or one
// of its manifests. A digest the artifact does not name is unknown, even if
// the cache holds it for another image: a repository serves nothing outside
// its closure (a pkgs/ name: the closures of its last resolutions, see
// packages.go).
func (reg *Registry) serveBlob(w http.ResponseWriter, r *http.Request, name repoName, ref string) error {
	d, err := v1.NewHash(ref)
	if err != nil {
		return errorf(http.StatusBadRequest, codeDigestInvalid, "invalid digest %q: %v", ref, err)
	}
	a, err := reg.resolveDigest(r.Context(), name, d)
	if err != nil {
		return err
	}
	if m, ok := a.ManifestByDigest(d); ok {
		writeManifest(w, r, m)
		return nil
	}
	if !slices.Contains(a.Blobs(), d) {
		// The image's SBOM referrer (referrers.go): its manifest, or a blob.
		refs, err := reg.referrersOf(a)
		if err != nil {
			return err
		}
		if m, ok := referrerManifest(refs, d); ok {
			writeManifest(w, r, m)
			return nil
		}
		if !isReferrerBlob(refs, d) {
			return errorf(http.StatusNotFound, codeBlobUnknown, "%s has no blob %s", name.raw, d)
		}
	}
	f, size, err := reg.opts.Builder.Cache.Open(d)
	if errors.Is(err, image.ErrBlobNotCached) {
		// Evicted since it was resolved (a full cache under many pulls):
		// resolving again makes the Builder assemble it anew.
		if _, err := reg.resolveDigest(r.Context(), name, d); err != nil {
			return err
		}
		f, size, err = reg.opts.Builder.Cache.Open(d)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Cache-Control", "max-age=31536000") // content-addressed: never changes
	http.ServeContent(&ociErrorWriter{ResponseWriter: w, r: r, digest: d, size: size}, r, "", time.Time{}, f)
	return nil
}

// ociErrorWriter replaces the plain-text error bodies http.ServeContent
// writes (an unsatisfiable range, mostly) with the spec's JSON errors.
type ociErrorWriter struct {
	http.ResponseWriter
	r       *http.Request
	digest  v1.Hash
	size    int64
	failed  bool
	written bool
}

func (e *ociErrorWriter) WriteHeader(status int) {
	if status < 400 || e.written {
		e.ResponseWriter.WriteHeader(status)
		return
	}
	e.failed, e.written = true, true
	apiErr := errorf(status, codeUnknown, "%s", http.StatusText(status))
	if status == http.StatusRequestedRangeNotSatisfiable {
		apiErr = errorf(status, codeRangeInvalid, "range %q is outside blob %s of %d bytes", e.r.Header.Get("Range"), e.digest, e.size)
		e.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(e.size, 10))
	}
	writeError(e.ResponseWriter, e.r, apiErr)
}

func (e *ociErrorWriter) Write(p []byte) (int, error) {
	if e.failed {
		return len(p), nil // ServeContent's own error text; ours is written
	}
	e.written = true
	return e.ResponseWriter.Write(p)
}

// ReadFrom keeps the sendfile fast path of the underlying writer.
func (e *ociErrorWriter) ReadFrom(src io.Reader) (int64, error) {
	if rf, ok := e.ResponseWriter.(io.ReaderFrom); ok && !e.failed {
		e.written = true
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{e}, src)
}

var _ io.ReaderFrom = (*ociErrorWriter)(nil)
