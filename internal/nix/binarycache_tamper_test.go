package nix

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixhash"
)

func TestBinaryCacheTamperedNarinfo(t *testing.T) {
	hello, greeting, _ := helloClosure(t)
	tests := []struct {
		name    string
		path    string
		tamper  func(t *testing.T, tc *testCache)
		wantErr string
	}{{
		name: "NarSize changed",
		path: hello,
		tamper: func(t *testing.T, tc *testCache) {
			editFile(t, tc.narinfoFile(hello), "NarSize: ", "NarSize: 1")
		},
		wantErr: "no valid signature",
	}, {
		name: "reference added",
		path: hello,
		tamper: func(t *testing.T, tc *testCache) {
			editFile(t, tc.narinfoFile(hello), "References: ", "References: "+BaseName(hello)+" ")
		},
		wantErr: "no valid signature",
	}, {
		name: "references reordered",
		path: hello,
		tamper: func(t *testing.T, tc *testCache) {
			f := tc.narinfoFile(hello)
			refs := parseNarinfoFile(t, f).References
			editFile(t, f, strings.Join(refs, " "), refs[1]+" "+refs[0])
		},
	}, {
		name: "narinfo of another path",
		path: greeting,
		tamper: func(t *testing.T, tc *testCache) {
			copyFile(t, tc.narinfoFile(hello), tc.narinfoFile(greeting))
		},
		wantErr: "answered with the narinfo of \"" + hello + "\"",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tc := newTestCache(t, "zstd", hello)
			tt.tamper(t, tc)
			cache := tc.open(t)
			_, err := cache.PathInfo(t.Context(), tt.path)
			checkErr(t, err, tt.wantErr, tt.path)
			rc, err := cache.NAR(t.Context(), tt.path)
			if rc != nil {
				rc.Close()
			}
			checkErr(t, err, tt.wantErr, tt.path)
		})
	}
}

func TestBinaryCacheTamperedNAR(t *testing.T) {
	hello, greeting, busybox := helloClosure(t)
	tests := []struct {
		name        string
		compression string
		tamper      func(t *testing.T, tc *testCache)
		wantErr     func(tc *testCache) string
	}{{
		name:        "another path's NAR",
		compression: "xz",
		tamper: func(t *testing.T, tc *testCache) {
			copyFile(t, tc.narFile(t, greeting), tc.narFile(t, hello))
		},
		wantErr: func(tc *testCache) string { return "NAR hash mismatch: got sha256:" },
	}, {
		name:        "flipped byte",
		compression: "none",
		tamper: func(t *testing.T, tc *testCache) {
			flipByte(t, tc.narFile(t, hello))
		},
		wantErr: func(tc *testCache) string { return "NAR hash mismatch: got sha256:" },
	}, {
		name:        "longer NAR",
		compression: "none",
		tamper: func(t *testing.T, tc *testCache) {
			copyFile(t, tc.narFile(t, busybox), tc.narFile(t, hello))
		},
		wantErr: func(tc *testCache) string { return "NAR size mismatch: more than the" },
	}, {
		name:        "corrupt xz",
		compression: "xz",
		tamper: func(t *testing.T, tc *testCache) {
			flipByte(t, tc.narFile(t, hello))
		},
		wantErr: func(tc *testCache) string { return tc.URL() + "/nar/" },
	}}
	for _, tt := range tests {
		for _, useCacheDir := range []bool{false, true} {
			name := tt.name + "/temp file"
			if useCacheDir {
				name = tt.name + "/cache dir"
			}
			t.Run(name, func(t *testing.T) {
				tc := newTestCache(t, tt.compression, hello)
				tt.tamper(t, tc)
				cacheDir, tmp := t.TempDir(), t.TempDir()
				opts := BinaryCacheOptions{TrustedKeys: []string{tc.Key.Public}}
				if useCacheDir {
					opts.CacheDir = cacheDir
				}
				t.Setenv("TMPDIR", tmp)
				rc, err := tc.openWith(t, opts).NAR(t.Context(), hello)
				if rc != nil {
					rc.Close()
					t.Error("NAR returned a reader")
				}
				checkErr(t, err, tt.wantErr(tc), hello)
				if !strings.Contains(err.Error(), tc.URL()+"/nar/") {
					t.Errorf("error %q does not name the NAR's URL", err)
				}
				if names := append(dirNames(t, cacheDir), dirNames(t, tmp)...); len(names) > 0 {
					t.Errorf("files left behind: %v", names)
				}
			})
		}
	}
}

// flipByte inverts a byte in the middle of a file.
func flipByte(t *testing.T, name string) {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// FileHash and FileSize are not signed and Nix does not check them when it
// substitutes: NAR and ReadNAR read a narinfo whose FileHash and FileSize
// are wrong, and still check the signed NAR hash.
func TestBinaryCacheUncheckedFileHash(t *testing.T) {
	hello, _, _ := helloClosure(t)
	want := readNAR(t, NewLocalStore(), hello)
	for _, tt := range []struct {
		name string
		nar  func(t *testing.T, tc *testCache) ([]byte, error)
	}{{
		name: "NAR to a temporary file",
		nar: func(t *testing.T, tc *testCache) ([]byte, error) {
			return readAllNAR(t, tc.open(t), hello)
		},
	}, {
		name: "NAR to the cache folder",
		nar: func(t *testing.T, tc *testCache) ([]byte, error) {
			return readAllNAR(t, tc.openWith(t, BinaryCacheOptions{TrustedKeys: []string{tc.Key.Public}, CacheDir: t.TempDir()}), hello)
		},
	}, {
		name: "ReadNAR",
		nar: func(t *testing.T, tc *testCache) ([]byte, error) {
			var got []byte
			err := tc.open(t).ReadNAR(t.Context(), hello, func(r io.Reader) error {
				var err error
				got, err = io.ReadAll(r)
				return err
			})
			return got, err
		},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			tc := newTestCache(t, "xz", hello)
			ni := parseNarinfoFile(t, tc.narinfoFile(hello))
			if ni.FileHash == nil || ni.FileSize == 0 {
				t.Fatalf("nix copy wrote no FileHash or FileSize for %s", hello)
			}
			wrongHash := ni.NarHash.Format(nixhash.NixBase32, true)
			editFile(t, tc.narinfoFile(hello), "FileHash: "+ni.FileHash.Format(nixhash.NixBase32, true), "FileHash: "+wrongHash)
			editFile(t, tc.narinfoFile(hello), fmt.Sprintf("FileSize: %d\n", ni.FileSize), fmt.Sprintf("FileSize: %d\n", ni.FileSize+1))
			got, err := tt.nar(t, tc)
			if err != nil {
				t.Fatalf("wrong FileHash and FileSize: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got %d bytes, want the %d of the local NAR", len(got), len(want))
			}

			// The NAR hash is still checked.
			flipByte(t, tc.narFile(t, hello))
			if _, err := tt.nar(t, tc); err == nil {
				t.Error("a flipped byte in the NAR file was not noticed")
			}
		})
	}
}

func readAllNAR(t *testing.T, c *BinaryCache, path string) ([]byte, error) {
	t.Helper()
	rc, err := c.NAR(t.Context(), path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
