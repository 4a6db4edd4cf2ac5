package nix

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/nix-community/go-nix/pkg/nixhash"
)

// maxNarinfoSize bounds a narinfo download; real ones are a few hundred
// bytes, a few kilobytes with many references.
const maxNarinfoSize = 1 << 20

// cacheEntry is a narinfo whose signature checked out, and the PathInfo it
// gives.
type cacheEntry struct {
	info *PathInfo
	nar  *narinfo.NarInfo // where and how the NAR is stored
}

// fetchEntry downloads, parses and verifies the narinfo of path.
func (c *BinaryCache) fetchEntry(ctx context.Context, path string) (*cacheEntry, error) {
	ni, err := c.fetchNarinfo(ctx, HashPart(path), path)
	if err != nil {
		return nil, err
	}
	if err := c.verify(path, ni); err != nil {
		return nil, err
	}
	return &cacheEntry{info: pathInfoOf(ni), nar: ni}, nil
}

// fetchNarinfo downloads and parses <hash>.narinfo; what names the path
// (or the hash) in errors. The result is not verified yet.
func (c *BinaryCache) fetchNarinfo(ctx context.Context, hash, what string) (*narinfo.NarInfo, error) {
	u := c.url + "/" + hash + ".narinfo"
	resp, err := c.get(ctx, u)
	if isStatus(err, http.StatusNotFound) || isStatus(err, http.StatusForbidden) {
		// As Nix: a private S3 bucket answers 403 for what it lacks.
		return nil, &NotFoundError{Path: what, Store: c.String()}
	}
	if err != nil {
		return nil, fmt.Errorf("reading narinfo for %s: %w", what, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxNarinfoSize+1))
	if err == nil && len(data) > maxNarinfoSize {
		err = fmt.Errorf("larger than %d bytes", maxNarinfoSize)
	}
	var ni *narinfo.NarInfo
	if err == nil {
		ni, err = ParseNarinfo(data)
	}
	if err != nil {
		return nil, fmt.Errorf("reading narinfo for %s: %s: %w", what, u, err)
	}
	return ni, nil
}

// PathFromHash implements HashQuerier: the narinfo of <hash> names its
// store path, and is verified like any other.
func (c *BinaryCache) PathFromHash(ctx context.Context, hash string) (string, error) {
	what := StoreDir + "/" + hash + "-…"
	if err := c.checkCacheInfo(ctx); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	ni, err := c.fetchNarinfo(ctx, hash, what)
	if err != nil {
		return "", err
	}
	path, err := ParseStorePath(ni.StorePath)
	if err != nil || HashPart(path) != hash {
		return "", fmt.Errorf("%s: cache %s answered with the narinfo of %q", what, c, ni.StorePath)
	}
	if err := c.verify(path, ni); err != nil {
		return "", err
	}
	c.entries.Store(path, &cacheEntry{info: pathInfoOf(ni), nar: ni})
	return path, nil
}

// verify checks that ni is a complete narinfo for path, signed by a trusted
// key.
func (c *BinaryCache) verify(path string, ni *narinfo.NarInfo) error {
	if ni.StorePath != path {
		return fmt.Errorf("%s: cache %s answered with the narinfo of %q", path, c, ni.StorePath)
	}
	if ni.URL == "" || ni.NarHash == nil || ni.NarSize == 0 {
		return fmt.Errorf("%s: narinfo in %s lacks URL, NarHash or NarSize", path, c)
	}
	if ni.NarHash.Algo() != nixhash.SHA256 || ni.FileHash != nil && ni.FileHash.Algo() != nixhash.SHA256 {
		return fmt.Errorf("%s: narinfo in %s has hashes other than sha256", path, c)
	}
	if err := ni.Check(); err != nil {
		return fmt.Errorf("%s: invalid narinfo in %s: %w", path, c, err)
	}
	if c.allowUnsigned || c.signedByTrustedKey(ni) {
		return nil
	}
	return &untrustedError{fmt.Sprintf("%s: no valid signature from a trusted key in %s (signed by: %s)",
		path, c, signers(ni.Signatures))}
}

// signedByTrustedKey reports whether any of ni's signatures is valid for a
// trusted key. (go-nix's signature.VerifyFirst judges only the first
// signature whose key name is trusted, so a stale signature could hide a
// good one; Nix accepts any valid one.)
func (c *BinaryCache) signedByTrustedKey(ni *narinfo.NarInfo) bool {
	fp := fingerprint(ni)
	for _, sig := range ni.Signatures {
		for _, key := range c.keys {
			if key.Verify(fp, sig) {
				return true
			}
		}
	}
	return false
}

// fingerprint is what Nix signs:
//
//	1;<store path>;sha256:<nixbase32 NAR hash>;<NAR size>;<refs>
//
// where refs are the absolute reference paths, sorted, joined by commas.
// go-nix's Fingerprint keeps the narinfo's order, so it gets a sorted copy.
func fingerprint(ni *narinfo.NarInfo) string {
	sorted := *ni
	sorted.References = slices.Sorted(slices.Values(ni.References))
	return sorted.Fingerprint()
}

func signers(sigs []signature.Signature) string {
	if len(sigs) == 0 {
		return "none"
	}
	names := make([]string, len(sigs))
	for i, s := range sigs {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// pathInfoOf converts a verified narinfo, whose references and deriver are
// base names.
func pathInfoOf(ni *narinfo.NarInfo) *PathInfo {
	refs := make([]string, len(ni.References))
	for i, r := range ni.References {
		refs[i] = StoreDir + "/" + r
	}
	slices.Sort(refs)
	deriver := ""
	if ni.Deriver != "" {
		deriver = StoreDir + "/" + ni.Deriver
	}
	sigs := make([]string, len(ni.Signatures))
	for i, s := range ni.Signatures {
		sigs[i] = s.String()
	}
	return &PathInfo{
		Path:       ni.StorePath,
		NarHash:    ni.NarHash.Format(nixhash.NixBase32, true), // as NormalizeHash gives it
		NarSize:    ni.NarSize,
		References: refs,
		Deriver:    deriver,
		Signatures: sigs,
		CA:         ni.CA,
	}
}
