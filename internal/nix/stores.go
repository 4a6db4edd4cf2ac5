package nix

import (
	"context"
	"errors"
	"io"
	"strings"
)

// Stores tries several stores in order, as Nix tries its substituters: a
// path comes from the first store that has it. A store that fails (it is
// unreachable, or no trusted key signed its answer) is passed over for the
// next; if none has the path, the error says why each that failed did.
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

// NAR implements Store, reading from the first store that has the path
// and can serve its NAR.
func (s Stores) NAR(ctx context.Context, path string) (io.ReadCloser, error) {
	var nar io.ReadCloser
	err := s.fromEach(ctx, path, func(st Store, _ *PathInfo) (bool, error) {
		var err error
		nar, err = st.NAR(ctx, path)
		return false, err
	})
	return nar, err
}

// Files reads from the first store that has the path and can serve its
// files.
func (s Stores) Files(ctx context.Context, path string) (FileReader, error) {
	var files FileReader
	err := s.fromEach(ctx, path, func(st Store, _ *PathInfo) (bool, error) {
		var err error
		files, err = Files(ctx, st, path)
		return false, err
	})
	return files, err
}

// ReadNAR implements NARReader, reading from the first store that has the
// path and can serve its NAR. Once read has been called, its outcome
// stands: what it did with a part of the NAR cannot be undone here.
func (s Stores) ReadNAR(ctx context.Context, path string, read func(nar io.Reader) error) error {
	return s.fromEach(ctx, path, func(st Store, _ *PathInfo) (bool, error) {
		called := false
		err := ReadNAR(ctx, st, path, func(r io.Reader) error {
			called = true
			return read(r)
		})
		return called, err
	})
}

// fromEach runs use with each store that has the path, in order, until one
// succeeds or use says its failure is final. A store whose narinfo answered
// but whose NAR cannot be had (it went down since, or lost the file) is
// passed over like one that failed to answer.
func (s Stores) fromEach(ctx context.Context, path string, use func(Store, *PathInfo) (final bool, err error)) error {
	var failures []error
	for _, st := range s {
		info, err := st.PathInfo(ctx, path)
		has, final := err == nil, false
		if has {
			final, err = use(st, info)
		}
		if err == nil || final || ctx.Err() != nil {
			return err
		}
		if has || !errors.Is(err, ErrNotFound) {
			failures = append(failures, err) // a NAR its narinfo names is missing: say so
		}
	}
	return s.none(path, failures)
}

// PathFromHash implements HashQuerier with the stores that can.
func (s Stores) PathFromHash(ctx context.Context, hash string) (string, error) {
	var failures []error
	for _, st := range s {
		q, ok := st.(HashQuerier)
		if !ok {
			continue
		}
		p, err := q.PathFromHash(ctx, hash)
		if err == nil || ctx.Err() != nil {
			return p, err
		}
		if !errors.Is(err, ErrNotFound) {
			failures = append(failures, err)
		}
	}
	return "", s.none(StoreDir+"/"+hash+"-…", failures)
}

func (s Stores) find(ctx context.Context, path string) (Store, *PathInfo, error) {
	var found Store
	var info *PathInfo
	err := s.fromEach(ctx, path, func(st Store, i *PathInfo) (bool, error) {
		found, info = st, i
		return false, nil
	})
	return found, info, err
}

// none is the error for a path no store gave: the failures of those that
// failed, or that none has it.
func (s Stores) none(path string, failures []error) error {
	if len(failures) > 0 {
		return errors.Join(failures...)
	}
	return &NotFoundError{Path: path, Store: s.String()}
}
