package nix

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kix-project/kix/test/fixture"
)

// orderSet is a package set whose attribute names sort in the opposite
// order of their derivations' names (Nix 2.8's nix build --json answers in
// the order of the names), and one package with two outputs, the first of
// them "bin".
const orderSet = `
let
  fx = import %FIXTURE% { };
  mk = name: fx.lib.mkDerivation { pname = name; version = "1"; script = "echo ${name} > $out"; };
in rec {
  first = mk "order-zzz";
  second = mk "order-mmm";
  third = mk "order-aaa";
  multi = fx.lib.mkDerivation {
    pname = "order-multi";
    version = "1";
    outputs = [ "bin" "out" ];
    script = "echo bin > $bin; echo out > $out";
  };
  multiOut = multi.out;
}
`

func TestPackageSetBuildOrder(t *testing.T) {
	fixture.Build(t, "busybox") // skips (or fails under CI) without Nix
	withNixConf(t)
	file := filepath.Join(t.TempDir(), "set.nix")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(orderSet, "%FIXTURE%", fixture.Dir())), 0o644); err != nil {
		t.Fatal(err)
	}
	outPath := func(attr string) string {
		return fixture.RunNix(t, "nix", "--extra-experimental-features", "nix-command", "eval", "--raw", "--file", file, attr+".outPath")
	}
	set := &PackageSet{Ref: file}
	for _, tt := range []struct {
		name  string
		attrs []string
	}{
		{"names sorting the other way", []string{"first", "second", "third"}},
		{"names in no order", []string{"second", "third", "first"}},
		{"one attribute twice", []string{"third", "third"}},
		{"two outputs of one derivation", []string{"multiOut", "first", "multi"}},
		{"first output of several", []string{"multi"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for _, a := range tt.attrs {
				want = append(want, outPath(a))
			}
			got, err := set.Build(t.Context(), tt.attrs)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Build(%v) (-want +got):\n%s", tt.attrs, diff)
			}
		})
	}

	_, err := set.Build(t.Context(), []string{"first", "nope"})
	if !errors.Is(err, ErrUnknownAttribute) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown attribute: %v, want ErrUnknownAttribute naming it", err)
	}
}

func TestDefaultOutput(t *testing.T) {
	for _, tt := range []struct {
		outputs map[string]string
		want    string
	}{
		{map[string]string{"out": "/o", "bin": "/b"}, "/o"},
		{map[string]string{"dev": "/d", "bin": "/b"}, "/b"},
		{nil, ""},
	} {
		if got := defaultOutput(tt.outputs); got != tt.want {
			t.Errorf("defaultOutput(%v) = %q, want %q", tt.outputs, got, tt.want)
		}
	}
}
