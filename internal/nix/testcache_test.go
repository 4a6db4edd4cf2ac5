package nix

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kix-project/kix/test/fixture"
	"github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/narinfo"
)

// testCache is a fixture binary cache with helpers to reach into it.
type testCache struct {
	*fixture.BinaryCache
}

func newTestCache(t *testing.T, compression string, paths ...string) *testCache {
	t.Helper()
	return &testCache{fixture.NewBinaryCache(t, compression, paths...)}
}

func newTestCacheSigned(t *testing.T, compression string, key fixture.SigningKey, paths ...string) *testCache {
	t.Helper()
	return &testCache{fixture.NewBinaryCacheSigned(t, compression, key, paths...)}
}

// open returns a BinaryCache over tc trusting its key.
func (tc *testCache) open(t *testing.T) *BinaryCache {
	t.Helper()
	return tc.openWith(t, BinaryCacheOptions{TrustedKeys: []string{tc.Key.Public}})
}

func (tc *testCache) openWith(t *testing.T, opts BinaryCacheOptions) *BinaryCache {
	t.Helper()
	c, err := NewBinaryCache(tc.URL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// narinfoFile is the file holding the narinfo of a store path.
func (tc *testCache) narinfoFile(path string) string {
	return filepath.Join(tc.Dir, HashPart(path)+".narinfo")
}

// narFile is the file holding the NAR of a store path.
func (tc *testCache) narFile(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(tc.narinfoFile(path))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ni, err := narinfo.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(tc.Dir, filepath.FromSlash(ni.URL))
}

func anyRequest(string) bool { return true }

func narRequest(p string) bool { return strings.HasPrefix(p, "/nar/") }

func narinfoRequest(p string) bool { return strings.HasSuffix(p, ".narinfo") }

// editFile replaces old by repl in a file, which must contain old.
func editFile(t *testing.T, name, old, repl string) {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%s does not contain %q:\n%s", name, old, data)
	}
	data = bytes.Replace(data, []byte(old), []byte(repl), 1)
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readNAR returns the whole NAR of path in s.
func readNAR(t *testing.T, s Store, path string) []byte {
	t.Helper()
	rc, err := s.NAR(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading NAR of %s from %s: %v", path, s, err)
	}
	return data
}

// fileEntry is one file of a store path, its contents by hash.
type fileEntry struct {
	Header nar.Header
	SHA256 string
}

func readFiles(t *testing.T, s Store, path string) []fileEntry {
	t.Helper()
	fr, err := Files(context.Background(), s, path)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	var entries []fileEntry
	for {
		h, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return entries
		}
		if err != nil {
			t.Fatalf("reading files of %s from %s: %v", path, s, err)
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, fr); err != nil {
			t.Fatalf("reading %s%s from %s: %v", path, h.Path, s, err)
		}
		entries = append(entries, fileEntry{Header: *h, SHA256: hex.EncodeToString(sum.Sum(nil))})
	}
}

// dirNames lists a directory's entries.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
