package nix

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kix-project/kix/test/fixture"
)

func TestAddText(t *testing.T) {
	hello := fixture.Build(t, "hello")
	text := `{"roots":["` + hello + `"], "quote": "\" ${x} \\"}`
	p, err := AddText(context.Background(), "spec.json", text, []string{hello})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(p, "-spec.json") {
		t.Errorf("store path %s", p)
	}
	data, err := os.ReadFile(p)
	if err != nil || string(data) != text {
		t.Errorf("content %q, %v; want %q", data, err, text)
	}
	info, err := NewLocalStore().PathInfo(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{hello}, info.References); diff != "" {
		t.Errorf("references (-want +got):\n%s", diff)
	}
	if _, err := AddText(context.Background(), "x", "y", []string{"/etc/passwd"}); err == nil {
		t.Error("a reference outside the store was accepted")
	}
}
