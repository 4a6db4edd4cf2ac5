package nix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/nixhash"
)

// LocalStore is the machine's own Nix store, queried with `nix path-info`
// (Nix 2.8 or newer; a daemon is used if NIX_REMOTE says so, but none is
// needed) and read directly from /nix/store.
type LocalStore struct {
	// Nix is the nix command; "nix" on PATH if empty.
	Nix string

	infos sync.Map // path -> cachedInfo

	listing storeListing
}

// NewLocalStore returns the local store.
func NewLocalStore() *LocalStore { return &LocalStore{} }

func (s *LocalStore) String() string { return "the local store" }

// PathInfo implements Store. A base name ("<hash>-<name>") is read as the
// store path it names, not as a file in the current folder, as
// ParseStorePath reads it.
func (s *LocalStore) PathInfo(ctx context.Context, path string) (*PathInfo, error) {
	if sp, err := ParseStorePath(path); err == nil {
		path = sp
	}
	if c, ok := s.infos.Load(path); ok {
		c := c.(cachedInfo)
		if c.id == (PathID{}) || StatPathID(path) == c.id {
			return c.info, nil
		}
		s.infos.Delete(path) // deleted, or made again since
	}
	infos, err := s.query(ctx, []string{path}, false)
	if err != nil {
		return nil, err
	}
	return infos[0], nil
}

// Closure implements ClosureQuerier with one nix call.
func (s *LocalStore) Closure(ctx context.Context, roots []string) ([]*PathInfo, error) {
	return s.query(ctx, roots, true)
}

// NAR implements Store by serialising the path from disk.
func (s *LocalStore) NAR(ctx context.Context, path string) (io.ReadCloser, error) {
	if _, err := s.PathInfo(ctx, path); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(nar.DumpPath(pw, path))
	}()
	return pr, nil
}

// Files implements FileOpener by reading the store directly.
func (s *LocalStore) Files(ctx context.Context, path string) (FileReader, error) {
	if _, err := s.PathInfo(ctx, path); err != nil {
		return nil, err
	}
	return openDirFiles(path)
}

// PathFromHash implements HashQuerier by looking for <hash>-* in the
// store folder, then checking the path is valid. The folder's listing is
// kept while the folder does not change: a binary cache answers many
// narinfo requests for paths it does not have, and reading a large store
// for each would make every miss cost milliseconds.
func (s *LocalStore) PathFromHash(ctx context.Context, hash string) (string, error) {
	matches, err := s.listing.withHash(hash)
	if err != nil {
		return "", err
	}
	for _, m := range matches {
		if strings.HasSuffix(m, ".lock") || strings.HasSuffix(m, ".chroot") {
			continue
		}
		_, err := s.PathInfo(ctx, m)
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return "", err // not a miss: no Nix, a store that cannot be read
		}
	}
	return "", &NotFoundError{Path: StoreDir + "/" + hash + "-…", Store: s.String()}
}

// queryApart queries derivations and other paths in two calls and puts
// the answers together: in the order asked, or as one sorted closure.
func (s *LocalStore) queryApart(ctx context.Context, paths, drvs, others []string, recursive bool) ([]*PathInfo, error) {
	byPath := map[string]*PathInfo{}
	for _, group := range [][]string{drvs, others} {
		infos, err := s.query(ctx, group, recursive)
		if err != nil {
			return nil, err
		}
		for _, info := range infos {
			byPath[info.Path] = info
		}
	}
	if recursive {
		out := slices.Collect(maps.Values(byPath))
		SortPathInfos(out)
		return out, nil
	}
	out := make([]*PathInfo, len(paths))
	for i, p := range paths {
		out[i] = byPath[p]
	}
	return out, nil
}

// pathInfoJSON is one entry of `nix path-info --json`: a list of these in
// Nix before 2.19, an object keyed by path (null for invalid paths) after.
type pathInfoJSON struct {
	Path       string   `json:"path"`
	Valid      *bool    `json:"valid"`
	NarHash    string   `json:"narHash"`
	NarSize    uint64   `json:"narSize"`
	References []string `json:"references"`
	Deriver    string   `json:"deriver"`
	Signatures []string `json:"signatures"`
	CA         string   `json:"ca"`
}

func (s *LocalStore) query(ctx context.Context, paths []string, recursive bool) ([]*PathInfo, error) {
	for _, p := range paths {
		if _, err := ParseStorePath(p); err != nil {
			return nil, err
		}
	}
	var drvs, others []string
	for _, p := range paths {
		if strings.HasSuffix(p, ".drv") {
			drvs = append(drvs, p)
		} else {
			others = append(others, p)
		}
	}
	if len(drvs) > 0 && len(others) > 0 {
		return s.queryApart(ctx, paths, drvs, others, recursive)
	}
	args := []string{"--extra-experimental-features", "nix-command", "path-info", "--json"}
	if len(drvs) > 0 {
		// A .drv is asked about itself: nix path-info describes its
		// outputs otherwise (and, told --derivation, an output path's
		// deriver), hence derivations and others are asked apart.
		args = append(args, "--derivation")
	}
	if recursive {
		args = append(args, "--recursive")
	}
	args = append(args, "--")
	args = append(args, paths...)
	nixCmd := s.Nix
	if nixCmd == "" {
		nixCmd = "nix"
	}
	out, err := Run(ctx, nil, nixCmd, args...)
	var cmdErr *CommandError
	if errors.As(err, &cmdErr) && (strings.Contains(cmdErr.Stderr, "is not valid") || strings.Contains(cmdErr.Stderr, "don't know how to build")) {
		return nil, &NotFoundError{Path: strings.Join(paths, " "), Store: s.String()}
	}
	if cmdErr != nil {
		return nil, fmt.Errorf("nix path-info %s: %w", strings.Join(paths, " "), err)
	}
	if err != nil {
		return nil, err
	}
	entries, err := decodePathInfos(out)
	if err != nil {
		return nil, fmt.Errorf("nix path-info %s: %w", strings.Join(paths, " "), err)
	}
	infos := make([]*PathInfo, 0, len(entries))
	for _, e := range entries {
		if e.Valid != nil && !*e.Valid || e.NarHash == "" {
			return nil, &NotFoundError{Path: e.Path, Store: s.String()}
		}
		narHash, err := NormalizeHash(e.NarHash)
		if err != nil {
			return nil, fmt.Errorf("%s: narHash: %w", e.Path, err)
		}
		refs := slices.Clone(e.References)
		for i, r := range refs {
			if !strings.HasPrefix(r, "/") {
				refs[i] = StoreDir + "/" + r
			}
		}
		slices.Sort(refs)
		info := &PathInfo{
			Path:       e.Path,
			NarHash:    narHash,
			NarSize:    e.NarSize,
			References: refs,
			Deriver:    e.Deriver,
			Signatures: e.Signatures,
			CA:         e.CA,
		}
		s.infos.Store(info.Path, cachedInfo{info, StatPathID(info.Path)})
		infos = append(infos, info)
	}
	if !recursive && len(infos) != len(paths) {
		return nil, fmt.Errorf("nix path-info: asked for %d paths, got %d", len(paths), len(infos))
	}
	if recursive {
		SortPathInfos(infos)
	}
	return infos, nil
}

func decodePathInfos(data []byte) ([]pathInfoJSON, error) {
	var list []pathInfoJSON
	if err := json.Unmarshal(data, &list); err == nil {
		return list, nil
	}
	var byPath map[string]*pathInfoJSON
	if err := json.Unmarshal(data, &byPath); err != nil {
		return nil, fmt.Errorf("decoding output: %w", err)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range byPath {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		e := byPath[k]
		if e == nil {
			invalid := false
			e = &pathInfoJSON{Valid: &invalid}
		}
		e.Path = k
		list = append(list, *e)
	}
	return list, nil
}

// NormalizeHash turns any hash notation Nix prints (SRI "sha256-<base64>",
// "sha256:<base32>", "sha256:<hex>") into "sha256:<nixbase32>", the form
// narinfo files and signatures use.
func NormalizeHash(s string) (string, error) {
	h, err := nixhash.ParseAny(s, nil)
	if err != nil {
		return "", err
	}
	return h.Format(nixhash.NixBase32, true), nil
}
