package nix

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nix-community/go-nix/pkg/nar"

	"github.com/kix-project/kix/test/fixture"
)

func TestLocalPathInfo(t *testing.T) {
	hello := fixture.Build(t, "hello")
	s := NewLocalStore()
	info, err := s.PathInfo(context.Background(), hello)
	if err != nil {
		t.Fatal(err)
	}
	hash := nixStoreQuery(t, "--hash", hello)
	if info.NarHash != hash {
		t.Errorf("NarHash %s, nix-store says %s", info.NarHash, hash)
	}
	refs := strings.Fields(nixStoreQuery(t, "--references", hello))
	if diff := cmp.Diff(refs, info.References); diff != "" {
		t.Errorf("references (-nix-store +PathInfo):\n%s", diff)
	}
	var narBytes bytes.Buffer
	if err := nar.DumpPath(&narBytes, hello); err != nil {
		t.Fatal(err)
	}
	if uint64(narBytes.Len()) != info.NarSize {
		t.Errorf("NarSize %d, NAR is %d bytes", info.NarSize, narBytes.Len())
	}
}

// A derivation is described itself, not by its outputs (which nix
// path-info describes unless told --derivation).
func TestLocalPathInfoOfADerivation(t *testing.T) {
	hello := fixture.Build(t, "hello")
	drv := nixStoreQuery(t, "--deriver", hello)
	if !strings.HasSuffix(drv, ".drv") {
		t.Fatalf("deriver of %s: %q", hello, drv)
	}
	s := NewLocalStore()
	info, err := s.PathInfo(context.Background(), drv)
	if err != nil {
		t.Fatal(err)
	}
	if info.Path != drv || info.NarHash != nixStoreQuery(t, "--hash", drv) {
		t.Errorf("path info of %s: %s, %s", drv, info.Path, info.NarHash)
	}
	if p, err := s.PathFromHash(context.Background(), HashPart(drv)); err != nil || p != drv {
		t.Errorf("by hash: %s, %v", p, err)
	}
	// A closure of both: the output's and the derivation's.
	closure, err := s.Closure(context.Background(), []string{hello, drv})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, info := range closure {
		paths = append(paths, info.Path)
	}
	for _, want := range append(strings.Fields(nixStoreQuery(t, "--requisites", hello)), strings.Fields(nixStoreQuery(t, "--requisites", drv))...) {
		if !slices.Contains(paths, want) {
			t.Errorf("the closure of %s and %s lacks %s", hello, drv, want)
		}
	}
}

func nixStoreQuery(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("nix-store", append([]string{"--query"}, args...)...)
	cmd.Env = fixture.Env()
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func TestLocalClosure(t *testing.T) {
	hello := fixture.Build(t, "hello")
	infos, err := Closure(context.Background(), NewLocalStore(), hello)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range infos {
		got = append(got, i.Path)
	}
	if diff := cmp.Diff(fixture.Closure(t, hello), got); diff != "" {
		t.Errorf("closure (-nix-store -qR +Closure):\n%s", diff)
	}
	// The generic walk over PathInfo agrees with the one-call query.
	walked, err := Closure(context.Background(), pathInfoOnly{NewLocalStore()}, hello)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(infos, walked); diff != "" {
		t.Errorf("walked closure (-query +walk):\n%s", diff)
	}
}

// pathInfoOnly hides a store's one-call closure query, so closures of it
// are walked path by path.
type pathInfoOnly struct{ Store }

// An error from visit ends the walk and is what it returns.
func TestWalkClosureStopsOnVisitError(t *testing.T) {
	hello := fixture.Build(t, "hello")
	stop := errors.New("enough")
	visited := 0
	err := WalkClosure(context.Background(), pathInfoOnly{NewLocalStore()}, []string{hello}, func(*PathInfo) error {
		visited++
		return stop
	})
	if !errors.Is(err, stop) || visited != 1 {
		t.Errorf("WalkClosure = %v after %d visits, want %v after 1", err, visited, stop)
	}
}

func TestLocalNotFound(t *testing.T) {
	s := NewLocalStore()
	_, err := s.PathInfo(context.Background(), "/nix/store/00000000000000000000000000000000-missing")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("PathInfo(missing) = %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"/etc/passwd", "/nix/store/short", "/nix/store/../../etc", ""} {
		if _, err := s.PathInfo(context.Background(), bad); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("PathInfo(%q) = %v, want a malformed-path error", bad, err)
		}
	}
}

type entry struct {
	Header  nar.Header
	Content string
}

func readAll(t *testing.T, r FileReader) []entry {
	t.Helper()
	defer r.Close()
	var out []entry
	for {
		h, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{*h, string(data)})
	}
}

// Reading a path's files from disk yields exactly what parsing its NAR
// yields: the same entries, in the same order, with the same contents.
func TestFilesFromDiskMatchNAR(t *testing.T) {
	for _, attr := range []string{"hello", "busybox", "libgreet.dev", "helloImageSpec"} {
		t.Run(attr, func(t *testing.T) {
			p := fixture.Build(t, attr)
			s := NewLocalStore()
			direct, err := s.Files(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := s.NAR(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			nr, err := nar.NewReader(rc)
			if err != nil {
				t.Fatal(err)
			}
			fromNAR := &narFiles{Reader: nr, body: rc}
			if diff := cmp.Diff(readAll(t, fromNAR), readAll(t, direct)); diff != "" {
				t.Errorf("files (-NAR +disk):\n%s", diff)
			}
		})
	}
}

func TestParseStorePath(t *testing.T) {
	const h = "y2zsg6rkmgjs0pqm8l06pr8kfdws6996"
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"/nix/store/" + h + "-hello-2.12.1", "/nix/store/" + h + "-hello-2.12.1", true},
		{h + "-hello-2.12.1", "/nix/store/" + h + "-hello-2.12.1", true},
		{"/nix/store/" + h + "-hello/bin", "", false},
		{"/nix/store/" + h + "-hello/../x", "", false},
		{"/nix/store/" + h, "", false},
		{"/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x", "", false}, // e is not nixbase32
		{"/tmp/" + h + "-hello", "", false},
		{"/nix/store/" + h + "xhello", "", false}, // no dash after the hash
		{"/nix/store/" + h + "-", "", false},
		{"/nix/store/" + h + "-.hidden", "", false},
		{"/nix/store/" + h + "-" + strings.Repeat("a", 211), "/nix/store/" + h + "-" + strings.Repeat("a", 211), true},
		{"/nix/store/" + h + "-" + strings.Repeat("a", 212), "", false},
		{"", "", false},
	} {
		got, err := ParseStorePath(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseStorePath(%q) = %q, %v", tt.in, got, err)
		}
	}
}
