package cache

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/nixbase32"
	"github.com/nix-community/go-nix/pkg/nixhash"
	"github.com/valyala/fasthttp"

	"github.com/kix-project/kix/internal/nix"
)

// maxNarinfoUpload bounds an uploaded narinfo.
const maxNarinfoUpload = 1 << 20

// authorize checks the upload token: a bearer token, or the password of
// basic authentication (what Nix sends from a netrc file).
func (s *Server) authorize(ctx *fasthttp.RequestCtx) error {
	if s.opts.UploadToken == "" {
		return &httpError{http.StatusForbidden, "uploads are disabled: start kix cache with --upload-token"}
	}
	auth := string(ctx.Request.Header.Peek("Authorization"))
	got, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		got = basicPassword(auth)
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.UploadToken)) != 1 {
		ctx.Response.Header.Set("WWW-Authenticate", `Basic realm="kix cache"`)
		return &httpError{http.StatusUnauthorized, "uploading needs the cache's upload token"}
	}
	return nil
}

// basicPassword is the password of an Authorization: Basic header, or "".
func basicPassword(auth string) string {
	enc, ok := strings.CutPrefix(auth, "Basic ")
	if !ok {
		return ""
	}
	dec, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return ""
	}
	_, password, _ := strings.Cut(string(dec), ":")
	return password
}

// uploadStall is how long an upload may send nothing before it is dropped.
const uploadStall = time.Minute

// uploadBody is the body of an upload. One larger than the server reads
// ahead is streamed from the connection, each read moving the
// connection's deadline on: an upload takes as long as it keeps moving.
func uploadBody(ctx *fasthttp.RequestCtx) io.Reader {
	if r := ctx.RequestBodyStream(); r != nil {
		return &movingDeadline{r: r, conn: ctx.Conn()}
	}
	return bytes.NewReader(ctx.Request.Body())
}

type movingDeadline struct {
	r    io.Reader
	conn net.Conn
}

func (m *movingDeadline) Read(p []byte) (int, error) {
	if err := m.conn.SetReadDeadline(time.Now().Add(uploadStall)); err != nil {
		return 0, err
	}
	return m.r.Read(p)
}

// checkCacheInfoUpload accepts (and ignores) a nix-cache-info upload for
// this store location: Nix uploads one to a cache that has none.
func checkCacheInfoUpload(body io.Reader) error {
	info, err := nix.ParseCacheInfo(io.LimitReader(body, 64<<10))
	if err != nil {
		return badRequestf("%v", err)
	}
	if info.StoreDir != nix.StoreDir {
		return badRequestf("nix-cache-info: this cache is for %s", nix.StoreDir)
	}
	return nil
}

// verifiableNAR are the NAR file extensions Nix writes for the compressions
// kix can undo to check a narinfo's NarHash.
var verifiableNAR = map[string]bool{"": true, ".xz": true, ".zst": true, ".bz2": true, ".gz": true}

// narFileName is how Nix names NAR files: nar/<file hash>.nar[.<compression>].
var narFileName = regexp.MustCompile(`^([0-9a-df-np-sv-z]{52})\.nar(\.[a-z0-9]{1,5})?$`)

// putNAR writes an uploaded NAR file under a temporary name and renames it
// into place once its SHA-256 is the hash its name says.
func (b *dirBackend) putNAR(body io.Reader, name string) error {
	m := narFileName.FindStringSubmatch(name)
	if m == nil {
		return badRequestf("NAR file name %q: want <nixbase32 sha256>.nar[.<compression>]", name)
	}
	want, err := nixbase32.DecodeString(m[1])
	if err != nil {
		return badRequestf("NAR file name %q: %v", name, err)
	}
	if !verifiableNAR[m[2]] {
		// Its narinfo would be refused, unverified, after the upload.
		return badRequestf("NAR file name %q: kix verifies NARs compressed with xz, zstd, bzip2 or gzip, or not at all (nix copy --to '...?compression=zstd')", name)
	}
	tmp, err := receive(body, "nar/"+name, filepath.Join(b.dir, "nar"), b.maxUpload, func(sum []byte) error {
		if !bytes.Equal(sum, want) {
			return badRequestf("nar/%s: the file's sha256 is %s", name, nixbase32.EncodeToString(sum))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return commit(tmp, filepath.Join(b.dir, "nar", name))
}

// receive writes the upload what, read from body, to a new hidden file in
// dir, at most limit bytes, synced, and calls check with its SHA-256. On
// error nothing is left; otherwise the caller renames or removes the
// returned file.
func receive(body io.Reader, what, dir string, limit int64, check func(sum []byte) error) (_ string, err error) {
	f, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, limit+1))
	if err != nil {
		return "", fmt.Errorf("receiving %s: %w", what, err)
	}
	if n > limit {
		return "", &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("%s is larger than %d bytes", what, limit)}
	}
	if err := check(h.Sum(nil)); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}

// commit renames a finished upload into place.
func commit(tmp, name string) error {
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// putNarinfo accepts a narinfo whose NAR is in the folder and verifies,
// and whose references are all in the cache; it is signed if the server
// has a key, and renamed into place.
func (b *dirBackend) putNarinfo(body io.Reader, hash string) error {
	data, err := io.ReadAll(io.LimitReader(body, maxNarinfoUpload+1))
	if err != nil {
		return fmt.Errorf("receiving %s.narinfo: %w", hash, err)
	}
	if len(data) > maxNarinfoUpload {
		return &httpError{http.StatusRequestEntityTooLarge, "narinfo larger than 1 MiB"}
	}
	ni, err := parseUploadedNarinfo(data, hash)
	if err != nil {
		return err
	}
	if err := b.verifyUpload(ni); err != nil {
		return err
	}
	if b.key != nil {
		if err := b.key.Sign(ni); err != nil {
			return err
		}
		data = []byte(ni.String())
	}
	tmp, err := receive(bytes.NewReader(data), hash+".narinfo", b.dir, maxNarinfoUpload, func([]byte) error { return nil })
	if err != nil {
		return err
	}
	defer b.forget(hash)
	return commit(tmp, b.narinfoFile(hash))
}

func parseUploadedNarinfo(data []byte, hash string) (*narinfo.NarInfo, error) {
	ni, err := nix.ParseNarinfo(data)
	if err != nil {
		return nil, badRequestf("%s.narinfo: %v", hash, err)
	}
	if err := ni.Check(); err != nil {
		return nil, badRequestf("%s.narinfo: %v", hash, err)
	}
	if sp, err := nix.ParseStorePath(ni.StorePath); err != nil || nix.HashPart(sp) != hash {
		return nil, badRequestf("%s.narinfo: StorePath %q does not have hash %s", hash, ni.StorePath, hash)
	}
	if ni.NarHash == nil || ni.NarSize == 0 || ni.NarHash.Algo() != nixhash.SHA256 {
		return nil, badRequestf("%s: narinfo needs a sha256 NarHash and a NarSize", ni.StorePath)
	}
	return ni, nil
}

// verifyUpload checks that ni's NAR is in the folder and matches it, and
// that its references are in the cache.
func (b *dirBackend) verifyUpload(ni *narinfo.NarInfo) error {
	rel := path.Clean(ni.URL)
	name, ok := strings.CutPrefix(rel, "nar/")
	if !ok || !isPlainName(name) {
		return badRequestf("%s: URL %q: want nar/<file> (upload the NAR first)", ni.StorePath, ni.URL)
	}
	for _, ref := range ni.References {
		if ref == nix.BaseName(ni.StorePath) {
			continue
		}
		if _, err := os.Stat(b.narinfoFile(ref[:nix.HashLen])); err != nil {
			return badRequestf("%s references %s/%s, which is not in the cache: upload the closure in order", ni.StorePath, nix.StoreDir, ref)
		}
	}
	f, err := os.Open(filepath.Join(b.dir, "nar", name))
	if errors.Is(err, fs.ErrNotExist) {
		return badRequestf("%s: its NAR %s is not in the cache: upload it first", ni.StorePath, ni.URL)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := nix.VerifyNAR(ni, bufio.NewReaderSize(f, 1<<20)); err != nil {
		// A mismatch, a compression this server cannot read, or a file
		// that does not decompress: all the uploader's to fix.
		return badRequestf("%s: %s: %v", ni.StorePath, ni.URL, err)
	}
	return nil
}
