package nix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
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

// Closure returns the PathInfos of roots and of every path they reference,
// directly or not, sorted by path.
func Closure(ctx context.Context, s Store, roots ...string) ([]*PathInfo, error) {
	if q, ok := s.(ClosureQuerier); ok {
		return q.Closure(ctx, roots)
	}
	return walkClosure(ctx, s, roots)
}

// walkClosure follows references breadth first, asking for up to 16 paths
// at once (a binary cache answers over the network).
func walkClosure(ctx context.Context, s Store, roots []string) ([]*PathInfo, error) {
	const parallel = 16
	seen := map[string]*PathInfo{}
	queue := slices.Clone(roots)
	for _, r := range roots {
		seen[r] = nil
	}
	for len(queue) > 0 {
		batch := queue
		if len(batch) > parallel {
			batch = batch[:parallel]
		}
		queue = queue[len(batch):]
		infos := make([]*PathInfo, len(batch))
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		for i, p := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				infos[i], errs[i] = s.PathInfo(ctx, p)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		for _, info := range infos {
			seen[info.Path] = info
			for _, ref := range info.References {
				if _, ok := seen[ref]; !ok {
					seen[ref] = nil
					queue = append(queue, ref)
				}
			}
		}
	}
	out := make([]*PathInfo, 0, len(seen))
	for _, info := range seen {
		out = append(out, info)
	}
	SortPathInfos(out)
	return out, nil
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
