package nix

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nix-community/go-nix/pkg/nar"
)

// FileReader reads a store path's files one at a time, in NAR order: names
// sorted bytewise, each directory before its contents. Like archive/tar's
// Reader, Next advances to the next entry and Read reads a regular file's
// contents. Header paths are relative to the store path and start with "/"
// ("/" itself is the store path).
type FileReader interface {
	Next() (*nar.Header, error) // io.EOF after the last entry
	io.Reader
	Close() error
}

// Files returns a reader over a store path's files, read directly if the
// store can (FileOpener), otherwise parsed from its NAR.
func Files(ctx context.Context, s Store, path string) (FileReader, error) {
	if o, ok := s.(FileOpener); ok {
		return o.Files(ctx, path)
	}
	rc, err := s.NAR(ctx, path)
	if err != nil {
		return nil, err
	}
	r, err := nar.NewReader(rc)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("reading NAR of %s: %w", path, err)
	}
	return &narFiles{Reader: r, body: rc}, nil
}

type narFiles struct {
	*nar.Reader
	body io.Closer
}

func (n *narFiles) Close() error {
	err := n.Reader.Close()
	if cerr := n.body.Close(); err == nil {
		err = cerr
	}
	return err
}

// dirFiles walks a file tree on disk in NAR order.
type dirFiles struct {
	root    string
	pending []string // relative paths still to visit, next one last
	current *os.File
}

func openDirFiles(root string) (*dirFiles, error) {
	if _, err := os.Lstat(root); err != nil {
		return nil, err
	}
	return &dirFiles{root: root, pending: []string{"/"}}, nil
}

func (d *dirFiles) Next() (*nar.Header, error) {
	if d.current != nil {
		d.current.Close()
		d.current = nil
	}
	if len(d.pending) == 0 {
		return nil, io.EOF
	}
	rel := d.pending[len(d.pending)-1]
	d.pending = d.pending[:len(d.pending)-1]
	full := d.root
	if rel != "/" {
		full = filepath.Join(d.root, rel)
	}
	fi, err := os.Lstat(full)
	if err != nil {
		return nil, err
	}
	h := &nar.Header{Path: rel}
	switch mode := fi.Mode(); {
	case mode.IsDir():
		h.Type = nar.TypeDirectory
		entries, err := os.ReadDir(full) // sorted by name, bytewise
		if err != nil {
			return nil, err
		}
		for i := len(entries) - 1; i >= 0; i-- {
			d.pending = append(d.pending, filepath.Join(rel, entries[i].Name()))
		}
	case mode&os.ModeSymlink != 0:
		h.Type = nar.TypeSymlink
		if h.LinkTarget, err = os.Readlink(full); err != nil {
			return nil, err
		}
	case mode.IsRegular():
		h.Type = nar.TypeRegular
		h.Size = fi.Size()
		h.Executable = mode&0o111 != 0
		if d.current, err = os.Open(full); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%s: unsupported file type %v in the store", full, mode.Type())
	}
	return h, nil
}

func (d *dirFiles) Read(p []byte) (int, error) {
	if d.current == nil {
		return 0, io.EOF
	}
	return d.current.Read(p)
}

func (d *dirFiles) Close() error {
	if d.current != nil {
		return d.current.Close()
	}
	return nil
}
