package cache

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Compression is how NARs made from a store are compressed as they are
// served.
type Compression string

// The compressions Nix (2.8 and later) reads.
const (
	None Compression = "none"
	XZ   Compression = "xz"
	Zstd Compression = "zstd"
)

// ParseCompression checks a --compression value.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case None, XZ, Zstd:
		return c, nil
	}
	return "", fmt.Errorf("compression %q: want none, xz or zstd", s)
}

// extension is the suffix NAR files of this compression get.
func (c Compression) extension() string {
	switch c {
	case XZ:
		return ".xz"
	case Zstd:
		return ".zst"
	}
	return ""
}

// compressionOf is the compression a NAR file name asks for.
func compressionOf(ext string) (Compression, bool) {
	for _, c := range []Compression{None, XZ, Zstd} {
		if c.extension() == ext {
			return c, true
		}
	}
	return "", false
}

// writer compresses into w; Close flushes without closing w.
func (c Compression) writer(w io.Writer) (io.WriteCloser, error) {
	switch c {
	case XZ:
		return xz.NewWriter(w)
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	}
	return nopWriteCloser{w}, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
