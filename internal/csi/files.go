package csi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/nix-community/go-nix/pkg/nar"
	"golang.org/x/sys/unix"
)

// storeTime is the modification time of everything in a Nix store.
var storeTime = unix.NsecToTimeval(1e9)

// unpackNAR writes the files of a NAR at dst, read-only as in a Nix store:
// files 0444 (0555 if executable), folders 0555 (dst itself once sealTop
// is called on it), modification times 1. The NAR format allows no names
// that leave dst ("..", "/").
func unpackNAR(r io.Reader, dst string) error {
	// The NAR parser reads headers a few bytes at a time, from a goroutine
	// of its own that may still be reading when it is closed: the gate
	// makes sure it has stopped before r is handed back.
	bufs := unpackBuffers.Get().(*unpackBuffer)
	defer func() {
		bufs.in.Reset(nil)
		unpackBuffers.Put(bufs)
	}()
	bufs.in.Reset(r)
	gate := &gatedReader{r: bufs.in}
	defer gate.close()
	nr, err := nar.NewReader(gate)
	if err != nil {
		return fmt.Errorf("reading NAR: %w", err)
	}
	defer nr.Close()
	var dirs []string
	buf := bufs.copy[:]
	for {
		h, err := nr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading NAR: %w", err)
		}
		p := dst
		if h.Path != "/" {
			p = dst + h.Path
		}
		switch h.Type {
		case nar.TypeDirectory:
			err = os.Mkdir(p, 0o755)
			dirs = append(dirs, p)
		case nar.TypeSymlink:
			err = os.Symlink(h.LinkTarget, p)
		case nar.TypeRegular:
			err = writeFile(p, nr, h.Executable, buf)
		default:
			err = fmt.Errorf("unsupported NAR entry type %v", h.Type)
		}
		if err == nil {
			err = setStoreTime(p)
		}
		if err != nil {
			drain(nr)
			return fmt.Errorf("unpacking %s: %w", h.Path, err)
		}
	}
	// The top folder is left writable: moving a folder to another parent
	// rewrites its "..", which takes write permission on it (unless root).
	// The caller seals it once it is in place.
	if len(dirs) > 0 && dirs[0] == dst {
		dirs = dirs[1:]
	}
	return sealDirs(dirs)
}

// sealTop seals an unpacked path's top folder, if it is one.
func sealTop(p string) error {
	fi, err := os.Lstat(p)
	if err != nil || !fi.IsDir() {
		return err
	}
	return sealDirs([]string{p})
}

// drain runs the NAR parser to its end after unpacking failed here (a full
// disk, a name taken twice). Closed early, go-nix's parser goroutine would
// wait forever to hand over its next entry; run to the end, it exits. The
// rest of the NAR is read, as the caller would read it anyway to hash it.
func drain(nr *nar.Reader) {
	for {
		if _, err := nr.Next(); err != nil {
			return
		}
	}
}

// unpackBuffer is what unpacking a NAR reads and copies through: 512 KiB
// that, allocated per path, made a closure's fetch mostly garbage
// collection.
type unpackBuffer struct {
	in   *bufio.Reader
	copy [256 << 10]byte
}

var unpackBuffers = sync.Pool{New: func() any {
	return &unpackBuffer{in: bufio.NewReaderSize(nil, 256<<10)}
}}

// gatedReader passes reads to r until it is closed; close waits for a read
// in progress.
type gatedReader struct {
	mu     sync.Mutex
	r      io.Reader
	closed bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, errors.New("NAR reader closed")
	}
	return g.r.Read(p)
}

func (g *gatedReader) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func writeFile(p string, r io.Reader, executable bool, buf []byte) error {
	mode := os.FileMode(0o444)
	if executable {
		mode = 0o555
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	// Through buf, not f's ReadFrom: that would copy through a buffer of
	// its own, 32 KiB per file and per write.
	if _, err := io.CopyBuffer(onlyWriter{f}, r, buf); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// onlyWriter hides any ReadFrom method of its Writer from io.CopyBuffer.
type onlyWriter struct{ io.Writer }

func setStoreTime(p string) error {
	return unix.Lutimes(p, []unix.Timeval{storeTime, storeTime})
}

// sealDirs makes folders read-only and resets their modification times,
// deepest first (adding entries changed them).
func sealDirs(dirs []string) error {
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i], 0o555); err != nil {
			return err
		}
		if err := setStoreTime(dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

// linkTree recreates the tree at src as dst: folders made anew, regular
// files hard-linked (the same inodes, no copy), symlinks recreated.
func linkTree(src, dst string) error {
	var dirs []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch t := d.Type(); {
		case t.IsDir():
			dirs = append(dirs, target)
			return os.Mkdir(target, 0o755)
		case t&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
			return setStoreTime(target)
		case t.IsRegular():
			return os.Link(p, target)
		default:
			return fmt.Errorf("%s: unexpected file type %v in the store", p, t)
		}
	})
	if err != nil {
		return err
	}
	return sealDirs(dirs)
}

// removeAll removes a tree whose folders may be read-only.
func removeAll(p string) error {
	err := os.RemoveAll(p)
	if err == nil || os.Geteuid() == 0 {
		return err
	}
	_ = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(q, 0o755)
		}
		return nil
	})
	return os.RemoveAll(p)
}
