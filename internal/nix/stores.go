package nix

import (
	"context"
	"errors"
	"io"
	"strings"
)

// Stores tries several stores in order, as Nix tries its substituters: a
// path comes from the first store that has it.
type Stores []Store

func (s Stores) String() string {
	names := make([]string, len(s))
	for i, st := range s {
		names[i] = st.String()
	}
	return strings.Join(names, ", ")
}

// PathInfo implements Store.
func (s Stores) PathInfo(ctx context.Context, path string) (*PathInfo, error) {
	_, info, err := s.find(ctx, path)
	return info, err
}

// NAR implements Store, reading from the store that has the path.
func (s Stores) NAR(ctx context.Context, path string) (io.ReadCloser, error) {
	st, _, err := s.find(ctx, path)
	if err != nil {
		return nil, err
	}
	return st.NAR(ctx, path)
}

// Files reads from the store that has the path.
func (s Stores) Files(ctx context.Context, path string) (FileReader, error) {
	st, _, err := s.find(ctx, path)
	if err != nil {
		return nil, err
	}
	return Files(ctx, st, path)
}

// ReadNAR implements NARReader, reading from the store that has the path.
func (s Stores) ReadNAR(ctx context.Context, path string, read func(nar io.Reader) error) error {
	st, _, err := s.find(ctx, path)
	if err != nil {
		return err
	}
	return ReadNAR(ctx, st, path, read)
}

// PathFromHash implements HashQuerier with the stores that can.
func (s Stores) PathFromHash(ctx context.Context, hash string) (string, error) {
	for _, st := range s {
		q, ok := st.(HashQuerier)
		if !ok {
			continue
		}
		p, err := q.PathFromHash(ctx, hash)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		return p, err
	}
	return "", &NotFoundError{Path: StoreDir + "/" + hash + "-…", Store: s.String()}
}

func (s Stores) find(ctx context.Context, path string) (Store, *PathInfo, error) {
	for _, st := range s {
		info, err := st.PathInfo(ctx, path)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		return st, info, err
	}
	return nil, nil, &NotFoundError{Path: path, Store: s.String()}
}
