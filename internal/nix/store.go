package nix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
)

// PathInfo is what a store knows about a valid store path.
type PathInfo struct {
	Path       string   `json:"path"`       // /nix/store/<hash>-<name>
	NarHash    string   `json:"narHash"`    // "sha256:<nixbase32>"
	NarSize    uint64   `json:"narSize"`    // bytes of the NAR serialisation
	References []string `json:"references"` // store paths, sorted; may include Path itself
	Deriver    string   `json:"deriver,omitempty"`
	Signatures []string `json:"signatures,omitempty"`
	CA         string   `json:"ca,omitempty"`
}

// ErrNotFound is wrapped by errors for store paths a store does not hold.
var ErrNotFound = errors.New("not in the store")

// NotFoundError names the store path that was not found and where.
type NotFoundError struct {
	Path  string
	Store string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%s is not in %s", e.Path, e.Store)
}

func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// Store gives access to store paths.
type Store interface {
	// PathInfo returns the metadata of a valid store path, or an error
	// wrapping ErrNotFound.
	PathInfo(ctx context.Context, path string) (*PathInfo, error)
	// NAR returns the path's contents in Nix's archive format. The bytes
	// match PathInfo's NarHash: a store that fetches them from elsewhere
	// verifies them before it returns.
	NAR(ctx context.Context, path string) (io.ReadCloser, error)
	// String names the store in messages ("local store", a cache URL).
	String() string
}

// ClosureQuerier is implemented by stores that compute a closure faster
// than path by path.
type ClosureQuerier interface {
	Closure(ctx context.Context, roots []string) ([]*PathInfo, error)
}

// HashQuerier is implemented by stores that find a store path from its
// hash part alone.
type HashQuerier interface {
	PathFromHash(ctx context.Context, hash string) (string, error)
}

// FileOpener is implemented by stores that read a path's files directly,
// faster than by parsing its NAR.
type FileOpener interface {
	Files(ctx context.Context, path string) (FileReader, error)
}

// NARReader is implemented by stores that pass a NAR to a function as they
// download it, and check it once it was read, instead of writing it to
// disk first.
type NARReader interface {
	ReadNAR(ctx context.Context, path string, read func(nar io.Reader) error) error
}

// ReadNAR passes the NAR of path to read: as it downloads, if the store
// can (NARReader), otherwise from its NAR method. read may stop early. If
// ReadNAR returns an error, whatever read made of the bytes must be thrown
// away: a streamed NAR is checked only after read returns.
func ReadNAR(ctx context.Context, s Store, path string, read func(nar io.Reader) error) error {
	if r, ok := s.(NARReader); ok {
		return r.ReadNAR(ctx, path, read)
	}
	rc, err := s.NAR(ctx, path)
	if err != nil {
		return err
	}
	err = read(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return err
}

// Closure returns the PathInfos of roots and of every path they reference,
// directly or not, sorted by path.
func Closure(ctx context.Context, s Store, roots ...string) ([]*PathInfo, error) {
	if q, ok := s.(ClosureQuerier); ok {
		return q.Closure(ctx, roots)
	}
	var out []*PathInfo
	err := WalkClosure(ctx, s, roots, func(info *PathInfo) error {
		out = append(out, info)
		return nil
	})
	if err != nil {
		return nil, err
	}
	SortPathInfos(out)
	return out, nil
}

// walkParallel is how many paths WalkClosure asks a store about at once
// (a binary cache answers over the network).
const walkParallel = 16

// WalkClosure calls visit with the PathInfo of each path in the closure of
// roots as soon as it is known, so the caller can start on a path while
// the rest of the closure is still being looked up. visit is called from
// one goroutine at a time, once per path, in no particular order; an error
// from it ends the walk. Lookups are not batched: a new one starts as soon
// as any finishes.
func WalkClosure(ctx context.Context, s Store, roots []string, visit func(*PathInfo) error) error {
	if q, ok := s.(ClosureQuerier); ok {
		infos, err := q.Closure(ctx, roots)
		if err != nil {
			return err
		}
		for _, info := range infos {
			if err := visit(info); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		info *PathInfo
		err  error
	}
	answers := make(chan answer)
	seen := map[string]bool{}
	var queue []string
	for _, r := range roots {
		if !seen[r] {
			seen[r] = true
			queue = append(queue, r)
		}
	}
	var err error
	for inFlight := 0; inFlight > 0 || len(queue) > 0 && err == nil; {
		for ; err == nil && inFlight < walkParallel && len(queue) > 0; inFlight++ {
			p := queue[0]
			queue = queue[1:]
			go func() {
				info, err := s.PathInfo(ctx, p)
				answers <- answer{info, err}
			}()
		}
		a := <-answers
		inFlight--
		if err != nil {
			continue // draining the lookups still running
		}
		if err = a.err; err == nil {
			err = visit(a.info)
		}
		if err != nil {
			cancel()
			continue
		}
		for _, ref := range a.info.References {
			if !seen[ref] {
				seen[ref] = true
				queue = append(queue, ref)
			}
		}
	}
	return err
}

// SortPathInfos sorts by path.
func SortPathInfos(infos []*PathInfo) {
	slices.SortFunc(infos, func(a, b *PathInfo) int {
		switch {
		case a.Path < b.Path:
			return -1
		case a.Path > b.Path:
			return 1
		}
		return 0
	})
}
