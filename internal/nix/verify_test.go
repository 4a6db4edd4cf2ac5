package nix

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nix-community/go-nix/pkg/narinfo"

	"github.com/kix-project/kix/test/fixture"
)

// Keys kix makes are keys Nix reads, and the other way round; a narinfo
// kix signs is believed by a BinaryCache trusting kix's public key.
func TestSigningKeys(t *testing.T) {
	hello, greeting, _ := helloClosure(t)
	nixKey := fixture.NewSigningKey(t, "made-by-nix-1")
	k, err := ReadSigningKey(nixKey.SecretFile)
	if err != nil {
		t.Fatal(err)
	}
	if k.Public() != nixKey.Public || k.Name != "made-by-nix-1" {
		t.Errorf("public key of Nix's secret key: got %s, want %s", k.Public(), nixKey.Public)
	}

	secret, public, err := GenerateSigningKey("made-by-kix-1")
	if err != nil {
		t.Fatal(err)
	}
	kixKey, err := ParseSigningKey(secret + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if kixKey.Public() != public {
		t.Errorf("public key: got %s, want %s", kixKey.Public(), public)
	}

	tc := newTestCacheSigned(t, "none", nixKey, hello)
	for _, p := range []string{hello, greeting} {
		name := tc.narinfoFile(p)
		ni := parseNarinfoFile(t, name)
		if err := kixKey.Sign(ni); err != nil {
			t.Fatal(err)
		}
		if err := kixKey.Sign(ni); err != nil { // again: replaces, does not add
			t.Fatal(err)
		}
		if len(ni.Signatures) != 2 {
			t.Errorf("%s: signatures %v, want Nix's and kix's", p, ni.Signatures)
		}
		if err := os.WriteFile(name, []byte(ni.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cache := tc.openWith(t, BinaryCacheOptions{TrustedKeys: []string{public}})
	if _, err := cache.PathInfo(t.Context(), hello); err != nil {
		t.Errorf("narinfo signed by kix's key: %v", err)
	}
	if _, _, err := GenerateSigningKey("bad:name"); err == nil {
		t.Error("a key name with ':' was accepted")
	}
}

func parseNarinfoFile(t *testing.T, name string) *narinfo.NarInfo {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ni, err := narinfo.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return ni
}

func TestUntrustedIsErrUntrusted(t *testing.T) {
	hello, _, _ := helloClosure(t)
	tc := newTestCache(t, "none", hello)
	other := fixture.NewSigningKey(t, "other-1")
	_, err := tc.openWith(t, BinaryCacheOptions{TrustedKeys: []string{other.Public}}).PathInfo(t.Context(), hello)
	if !errors.Is(err, ErrUntrusted) {
		t.Fatalf("got %v, want an error wrapping ErrUntrusted", err)
	}
	if errors.Is(err, ErrHashMismatch) || errors.Is(err, ErrNotFound) {
		t.Errorf("%v matches the wrong sentinel", err)
	}
}

// ReadNAR streams what Nix serialised; a NAR edited in the cache is
// reported as a mismatch even when read itself failed on it.
func TestReadNAR(t *testing.T) {
	hello, greeting, _ := helloClosure(t)
	for _, compression := range []string{"none", "xz", "zstd"} {
		t.Run(compression, func(t *testing.T) {
			tc := newTestCache(t, compression, hello)
			cache := tc.open(t)
			want := readNAR(t, NewLocalStore(), hello)
			var got []byte
			err := cache.ReadNAR(t.Context(), hello, func(r io.Reader) error {
				var err error
				got, err = io.ReadAll(r)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("ReadNAR gave %d bytes, want the %d of the local NAR", len(got), len(want))
			}
			// read may stop early: the rest is still checked.
			if err := cache.ReadNAR(t.Context(), hello, func(io.Reader) error { return nil }); err != nil {
				t.Errorf("read that stops early: %v", err)
			}
			readErr := errors.New("disk full")
			if err := cache.ReadNAR(t.Context(), hello, func(io.Reader) error { return readErr }); !errors.Is(err, readErr) {
				t.Errorf("read's error: got %v", err)
			}
		})
	}

	tc := newTestCache(t, "none", greeting)
	editFile(t, tc.narFile(t, greeting), "Hello, world!", "Hello, wrold!")
	err := tc.open(t).ReadNAR(t.Context(), greeting, func(r io.Reader) error {
		_, err := io.Copy(io.Discard, r)
		return err
	})
	if !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), greeting) {
		t.Errorf("tampered NAR: got %v, want a hash mismatch naming %s", err, greeting)
	}
}

func TestVerifyNAR(t *testing.T) {
	hello, _, _ := helloClosure(t)
	tc := newTestCache(t, "xz", hello)
	ni := parseNarinfoFile(t, tc.narinfoFile(hello))
	good, err := os.ReadFile(tc.narFile(t, hello))
	if err != nil {
		t.Fatal(err)
	}
	bad := *ni
	bad.NarSize++
	tests := []struct {
		name string
		ni   *narinfo.NarInfo
		file []byte
		want error
	}{
		{"as Nix wrote it", ni, good, nil},
		{"narinfo says another size", &bad, good, ErrHashMismatch},
		{"truncated file", ni, good[:len(good)-8], errors.New("any")},
		{"file with a byte more", ni, append(append([]byte{}, good...), 0), errors.New("any")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyNAR(tt.ni, bytes.NewReader(tt.file))
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != nil && err == nil:
				t.Fatal("no error")
			case tt.want == ErrHashMismatch && !errors.Is(err, ErrHashMismatch):
				t.Fatalf("got %v, want a hash mismatch", err)
			}
		})
	}
}

func TestNarinfoOf(t *testing.T) {
	info := &PathInfo{
		Path:       "/nix/store/y2zsg6rkmgjs0pqm8l06pr8kfdws6996-hello-2.12.1",
		NarHash:    "sha256:027yibwyphnw5ifq69kf50avqvrnd0waqw2p90hqclk29cj1apim",
		NarSize:    856,
		References: []string{"/nix/store/6w87bx2n0rpqnbfrrf1d8dsaav14lsgc-busybox-1.35.0", "/nix/store/043v0czcrw7i3kjcmcq9g3h1q3m21ygn-hello-greeting-1.0"},
		Deriver:    "/nix/store/fjf6r0znlk9sil0a4rm73zlkbiizrjs2-hello-2.12.1.drv",
	}
	ni, err := NarinfoOf(info, "nar/x.nar.zst", "zstd")
	if err != nil {
		t.Fatal(err)
	}
	want := `StorePath: /nix/store/y2zsg6rkmgjs0pqm8l06pr8kfdws6996-hello-2.12.1
URL: nar/x.nar.zst
Compression: zstd
NarHash: sha256:027yibwyphnw5ifq69kf50avqvrnd0waqw2p90hqclk29cj1apim
NarSize: 856
References: 043v0czcrw7i3kjcmcq9g3h1q3m21ygn-hello-greeting-1.0 6w87bx2n0rpqnbfrrf1d8dsaav14lsgc-busybox-1.35.0
Deriver: fjf6r0znlk9sil0a4rm73zlkbiizrjs2-hello-2.12.1.drv
`
	if diff := cmp.Diff(want, ni.String()); diff != "" {
		t.Errorf("narinfo (-want +got):\n%s", diff)
	}
}

// A zstd frame asking for a window larger than libzstd gives Nix is
// refused before the decoder allocates it: the frame header is not signed.
func TestZstdWindowIsBounded(t *testing.T) {
	// Magic, a descriptor without content size or checksum, a window of
	// 2^28 bytes (log 10 + 18), and an empty last raw block.
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 18 << 3, 0x01, 0x00, 0x00}
	for name, open := range map[string]func(io.Reader) (io.ReadCloser, error){
		"decompress":       func(r io.Reader) (io.ReadCloser, error) { return decompress("zstd", r) },
		"decompressPooled": func(r io.Reader) (io.ReadCloser, error) { return decompressPooled("zstd", r) },
	} {
		rc, err := open(bytes.NewReader(frame))
		if err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		if err == nil {
			t.Errorf("%s: a frame with a 256 MiB window was read", name)
		}
	}
}
