package nix

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nix-community/go-nix/pkg/narinfo"
)

// ParseNarinfo reads what Nix writes exactly as go-nix's parser does.
func TestParseNarinfoAgreesWithGoNix(t *testing.T) {
	hello, _, _ := helloClosure(t)
	tc := newTestCache(t, "xz", hello)
	names, err := filepath.Glob(filepath.Join(tc.Dir, "*.narinfo"))
	if err != nil || len(names) < 3 {
		t.Fatalf("narinfos in the test cache: %v, %v", names, err)
	}
	var texts [][]byte
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, data)
	}
	texts = append(texts,
		bytes.ReplaceAll(texts[0], []byte("\n"), []byte("\r\n")), // CRLF lines
		bareNarinfo(texts[0]),
	)
	for _, text := range texts {
		want, err := narinfo.Parse(bytes.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseNarinfo(text)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		if diff := cmp.Diff(want.String(), got.String()); diff != "" {
			t.Errorf("ParseNarinfo (-go-nix +kix):\n%s", diff)
		}
	}
}

func TestParseNarinfoRefusesMalformedLines(t *testing.T) {
	for name, text := range map[string]string{
		"no separator": "StorePath /nix/store/x\n",
		"bad hash":     "NarHash: sha256:nothex\n",
		"bad size":     "NarSize: -1\n",
	} {
		if _, err := ParseNarinfo([]byte(text)); err == nil {
			t.Errorf("%s: %q was accepted", name, text)
		}
		if _, err := narinfo.Parse(bytes.NewReader([]byte(text))); err == nil {
			t.Errorf("%s: go-nix accepts %q, so kix should too", name, text)
		}
	}
}

// Nix reads a key it does not know as nothing, a value as all that
// follows the first ": ", and a signature it cannot read as one that does
// not verify, so kix does too (go-nix refuses all three).
func TestParseNarinfoReadsWhatNixReads(t *testing.T) {
	text := "StorePath: /nix/store/00000000000000000000000000000000-x\nURL: nar/a: b.nar\n" +
		"NarHash: sha256:0000000000000000000000000000000000000000000000000000\nNarSize: 10\nServedBy: some-tool\n" +
		"Sig: nocolon\nSig: cache-1:" + strings.Repeat("A", 86) + "==\n"
	ni, err := ParseNarinfo([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if ni.URL != "nar/a: b.nar" || ni.NarSize != 10 {
		t.Errorf("URL %q, NarSize %d", ni.URL, ni.NarSize)
	}
	if len(ni.Signatures) != 1 || ni.Signatures[0].Name != "cache-1" {
		t.Errorf("signatures %v, want the one that parses", ni.Signatures)
	}
}

// bareNarinfo is a narinfo without Compression (so bzip2), deriver or
// references.
func bareNarinfo(text []byte) []byte {
	text = regexp.MustCompile(`(?m)^Compression: .*\n`).ReplaceAll(text, nil)
	text = regexp.MustCompile(`(?m)^Deriver: .*$`).ReplaceAll(text, []byte("Deriver: unknown-deriver"))
	return regexp.MustCompile(`(?m)^References: .*$`).ReplaceAll(text, []byte("References: "))
}
