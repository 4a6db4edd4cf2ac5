package image

import (
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Compression is how layers are compressed.
type Compression string

// The compressions kix writes.
const (
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
	None Compression = "none"
)

// ParseCompression validates a --compression value.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case Gzip, Zstd, None:
		return c, nil
	}
	return "", fmt.Errorf("unknown compression %q (want gzip, zstd or none)", s)
}

// ociLayerType is the OCI media type of a layer compressed with c.
func (c Compression) ociLayerType() types.MediaType {
	switch c {
	case Zstd:
		return types.OCILayerZStd
	case None:
		return types.OCIUncompressedLayer
	}
	return types.OCILayer
}

// dockerLayerType is the Docker schema 2 media type, if Docker has one.
func (c Compression) dockerLayerType() (types.MediaType, bool) {
	switch c {
	case Gzip:
		return types.DockerLayer, true
	case None:
		return types.DockerUncompressedLayer, true
	}
	return "", false
}

// gzip settings: parallel blocks of 1 MiB at level 1 keep a cold pull above
// 150 MiB/s on two cores; the output depends only on the input.
const (
	gzipLevel     = pgzip.BestSpeed
	gzipBlockSize = 1 << 20
)

// compressor wraps w so that what is written to it comes out compressed.
func (c Compression) compressor(w io.Writer) (io.WriteCloser, error) {
	switch c {
	case Gzip:
		zw, err := pgzip.NewWriterLevel(w, gzipLevel)
		if err != nil {
			return nil, err
		}
		if err := zw.SetConcurrency(gzipBlockSize, 4); err != nil {
			return nil, err
		}
		return zw, nil
	case Zstd:
		// One encoder goroutine keeps the frame layout independent of the
		// machine; zstd is fast enough without splitting.
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	case None:
		return nopWriteCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}

// storeLayer stores the tar stream write writes as a layer compressed with
// c, hashing the stream on its way to the compressor: the diff ID.
func storeLayer(cache *BlobCache, c Compression, write func(w io.Writer) error) (Layer, error) {
	diffHash := sha256.New()
	digest, size, err := cache.Write(func(w io.Writer) error {
		zw, err := c.compressor(w)
		if err != nil {
			return err
		}
		if err := write(io.MultiWriter(zw, diffHash)); err != nil {
			zw.Close()
			return err
		}
		return zw.Close()
	})
	if err != nil {
		return Layer{}, err
	}
	l := Layer{Digest: digest, DiffID: hashOf(diffHash), Size: size, MediaType: c.ociLayerType()}
	l.DockerMediaType, _ = c.dockerLayerType()
	return l, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
