package nix

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/nixhash"
)

// ErrUntrusted is wrapped by errors for narinfos that carry no valid
// signature by a trusted key.
var ErrUntrusted = errors.New("not signed by a trusted key")

// ErrHashMismatch is wrapped by errors for NARs (or their compressed files)
// whose size or hash is not what their narinfo says.
var ErrHashMismatch = errors.New("content does not match its narinfo")

// untrustedError keeps a message as it is while matching ErrUntrusted.
type untrustedError struct{ msg string }

func (e *untrustedError) Error() string { return e.msg }
func (e *untrustedError) Unwrap() error { return ErrUntrusted }

// mismatchError keeps a message as it is while matching ErrHashMismatch.
type mismatchError struct{ msg string }

func (e *mismatchError) Error() string { return e.msg }
func (e *mismatchError) Unwrap() error { return ErrHashMismatch }

func mismatchf(format string, args ...any) error {
	return &mismatchError{fmt.Sprintf(format, args...)}
}

// VerifyNAR reads a NAR file as a binary cache stores it (compressed as ni
// says) and checks its size and hash, and those of the file, against ni.
func VerifyNAR(ni *narinfo.NarInfo, file io.Reader) error {
	return verifyNAR(file, ni, nil)
}

// verifyNAR decompresses file, passes the NAR to read (if not nil), reads
// what read left, and checks the NAR and the file against ni. It reads at
// most one byte more than NarSize of the NAR. If read fails on bytes that do
// not verify either, the mismatch is reported: it is the cause.
func verifyNAR(file io.Reader, ni *narinfo.NarInfo, read func(io.Reader) error) error {
	if ni.NarHash == nil || ni.NarSize == 0 {
		return errors.New("narinfo lacks NarHash or NarSize")
	}
	fileDigest := newDigest()
	compressed := io.Reader(file)
	if ni.FileHash != nil || ni.FileSize != 0 {
		compressed = io.TeeReader(file, fileDigest)
	}
	dec, err := decompressPooled(ni.Compression, compressed)
	if err != nil {
		return err
	}
	defer dec.Close()
	narDigest := newDigest()
	nar := io.TeeReader(io.LimitReader(dec, int64(ni.NarSize)+1), narDigest)
	var readErr error
	if read != nil {
		readErr = read(nar)
	}
	if _, err := io.Copy(io.Discard, nar); err != nil {
		return errors.Join(readErr, fmt.Errorf("decompressing: %w", err))
	}
	if err := checkNARDigest(narDigest, ni); err != nil {
		return err
	}
	if readErr != nil {
		return readErr
	}
	return checkFileDigest(fileDigest, compressed, ni)
}

// zstdDecoders are reused: a decoder is costly to make, and a closure has
// many small NARs. One goroutine each: paths are fetched in parallel.
var zstdDecoders = sync.Pool{New: func() any {
	d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
	return d
}}

// decompressPooled is decompress with pooled zstd decoders.
func decompressPooled(compression string, r io.Reader) (io.ReadCloser, error) {
	if compression != "zstd" {
		return decompress(compression, r)
	}
	d := zstdDecoders.Get().(*zstd.Decoder)
	if err := d.Reset(r); err != nil {
		zstdDecoders.Put(d)
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return pooledDecoder{d}, nil
}

type pooledDecoder struct{ *zstd.Decoder }

func (p pooledDecoder) Close() error {
	_ = p.Decoder.Reset(nil)
	zstdDecoders.Put(p.Decoder)
	return nil
}

func checkNARDigest(got *digest, ni *narinfo.NarInfo) error {
	switch want := ni.NarHash.Format(nixhash.NixBase32, true); {
	case got.n > ni.NarSize:
		return mismatchf("NAR size mismatch: more than the %d bytes the narinfo says", ni.NarSize)
	case !got.matches(ni.NarHash):
		return mismatchf("NAR hash mismatch: got %s, narinfo says %s", got, want)
	case got.n != ni.NarSize:
		return mismatchf("NAR size mismatch: got %d bytes, narinfo says %d", got.n, ni.NarSize)
	}
	return nil
}

// maxTrailingBytes bounds what is read after the end of a compressed stream
// to hash the whole file when the narinfo gives a FileHash but no FileSize.
const maxTrailingBytes = 1 << 20

// checkFileDigest reads what the decompressor left of the file and checks
// FileSize and FileHash, when the narinfo gives them.
func checkFileDigest(got *digest, rest io.Reader, ni *narinfo.NarInfo) error {
	if ni.FileHash == nil && ni.FileSize == 0 {
		return nil
	}
	limit := int64(maxTrailingBytes)
	if ni.FileSize > 0 {
		limit = int64(ni.FileSize) + 1 - int64(got.n)
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(rest, max(limit, 0))); err != nil {
		return fmt.Errorf("reading the compressed file: %w", err)
	}
	if ni.FileSize > 0 && got.n != ni.FileSize {
		return mismatchf("file size mismatch: got %d bytes, narinfo says %d", got.n, ni.FileSize)
	}
	if ni.FileHash != nil && !got.matches(ni.FileHash) {
		return mismatchf("file hash mismatch: got %s, narinfo says %s", got, ni.FileHash.Format(nixhash.NixBase32, true))
	}
	return nil
}
