package nix

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kix-project/kix/test/fixture"
)

// sbomFixture builds attr of test/nix/sbom.nix and returns its output.
func sbomFixture(t *testing.T, attr string) string {
	t.Helper()
	fixture.Build(t, "busybox") // skips (or fails under CI) without Nix
	return strings.TrimSpace(fixture.RunNix(t, "nix-build", sbomNix(), "-A", attr, "--no-out-link"))
}

func sbomNix() string { return filepath.Join(fixture.Dir(), "sbom.nix") }

// withNixConf makes the nix commands this package runs use the fixture
// configuration (no substituters) when the caller did not set one.
func withNixConf(t *testing.T) {
	if os.Getenv("NIX_CONF_DIR") == "" {
		t.Setenv("NIX_CONF_DIR", filepath.Join(fixture.Root(), "hack", "nix"))
	}
}

func TestReadDerivation(t *testing.T) {
	out := sbomFixture(t, "hello-patched")
	drvPath := nixStoreQuery(t, "--deriver", out)
	d, err := ReadDerivation(drvPath)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "hello-2.12.1" || d.Outputs["out"] != out {
		t.Errorf("got name %q, outputs %v; want hello-2.12.1 with out %s", d.Name, d.Outputs, out)
	}
	patches := d.Patches()
	if len(patches) != 1 || !strings.HasSuffix(patches[0], "-CVE-2099-0001.patch") {
		t.Errorf("Patches() = %v, want the CVE-2099-0001 patch", patches)
	}
	if !slices.Contains(d.InputSrcs, patches[0]) {
		t.Errorf("the patch %s is not among the input sources %v", patches[0], d.InputSrcs)
	}
	if diff := cmp.Diff([]string{"out"}, d.OutputNames()); diff != "" {
		t.Errorf("OutputNames (-want +got):\n%s", diff)
	}
}

func TestDerivationGraphMatchesNix(t *testing.T) {
	out := sbomFixture(t, "app")
	drvPath := nixStoreQuery(t, "--deriver", out)
	graph, err := DerivationGraph(drvPath)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range strings.Fields(nixStoreQuery(t, "--requisites", drvPath)) {
		if strings.HasSuffix(p, ".drv") {
			want = append(want, p)
		}
	}
	slices.Sort(want)
	got := slices.Sorted(maps.Keys(graph))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("derivations (-nix-store -qR +DerivationGraph):\n%s", diff)
	}
}

func TestReadDerivationErrors(t *testing.T) {
	_, err := ReadDerivation(StoreDir + "/00000000000000000000000000000000-missing.drv")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("missing .drv: got %v, want ErrNotFound", err)
	}
	if _, err := ReadDerivation("/etc/passwd"); err == nil || !strings.Contains(err.Error(), "not a store derivation") {
		t.Errorf("not a .drv: got %v", err)
	}
}

func TestEvalPackages(t *testing.T) {
	withNixConf(t)
	patched := sbomFixture(t, "hello-patched")
	pkgs, err := EvalPackages(context.Background(), "", sbomNix(), "hello-patched")
	if err != nil {
		t.Fatal(err)
	}
	want := &Package{
		Attr:        "hello-patched",
		Name:        "hello-2.12.1",
		Pname:       "hello",
		Version:     "2.12.1",
		DrvPath:     nixStoreQuery(t, "--deriver", patched),
		Outputs:     map[string]string{"out": patched},
		OutputName:  "out",
		Licenses:    []string{"GPL-3.0-or-later"},
		Homepage:    "https://www.gnu.org/software/hello/",
		Description: "A program that produces a familiar, friendly greeting",
		CPE:         "cpe:2.3:a:gnu:hello:2.12.1:*:*:*:*:*:*:*",
	}
	if diff := cmp.Diff(want, pkgs.Root); diff != "" {
		t.Errorf("root (-want +got):\n%s", diff)
	}
	byAttr := map[string]*Package{}
	for _, p := range pkgs.All {
		if byAttr[p.Attr] != nil {
			t.Errorf("%s listed twice", p.Attr)
		}
		byAttr[p.Attr] = p
	}
	for _, skipped := range []string{"lib", "notADerivation"} {
		if byAttr[skipped] != nil {
			t.Errorf("%s is not a package but was listed", skipped)
		}
	}
	licences := map[string][]string{
		"agpl-tool":   {"AGPL-3.0-only"},
		"unfree-blob": {"LicenseRef-nixpkgs-unfree"},
		// Strings, not licence attrs: nixpkgs short names as they are.
		"legacy-licences": {"LicenseRef-nixpkgs-mit", "LicenseRef-nixpkgs-unfree"},
		"app":             {"MIT"},
		"app-unfree":      {},
		"busybox":         {"GPL-2.0-only"},
	}
	for attr, want := range licences {
		p := byAttr[attr]
		if p == nil {
			t.Errorf("%s is missing from the packages", attr)
			continue
		}
		if diff := cmp.Diff(want, p.Licenses); diff != "" {
			t.Errorf("%s licences (-want +got):\n%s", attr, diff)
		}
	}
	if lg := byAttr["libgreet"]; lg == nil || len(lg.Outputs) != 2 || !strings.HasSuffix(lg.Outputs["dev"], "-libgreet-0.3.0-dev") {
		t.Errorf("libgreet outputs: %+v", lg)
	}
}

func TestEvalPackagesErrors(t *testing.T) {
	withNixConf(t)
	fixture.Build(t, "busybox")
	ctx := context.Background()
	if _, err := EvalPackages(ctx, "", sbomNix(), "no-such-package"); !errors.Is(err, ErrUnknownAttribute) {
		t.Errorf("unknown attribute: got %v, want ErrUnknownAttribute", err)
	}
	if _, err := EvalPackages(ctx, "", sbomNix(), "notADerivation"); err == nil || !strings.Contains(err.Error(), "not a derivation") {
		t.Errorf("not a derivation: got %v", err)
	}
	if _, err := EvalPackages(ctx, "", filepath.Join(t.TempDir(), "missing.nix"), ""); err == nil || !strings.Contains(err.Error(), "missing.nix") {
		t.Errorf("missing file: got %v", err)
	}
}

// A package's dependencies have their meta though the file's attributes do
// not name them: the root's inputs are followed.
func TestEvalPackagesFollowsInputs(t *testing.T) {
	file := filepath.Join(t.TempDir(), "wrapped.nix")
	expr := `let s = import ` + sbomNix() + ` { }; in {
  wrapped = derivation {
    name = "wrapped-1.0";
    system = builtins.currentSystem;
    builder = "${s.busybox}/bin/sh";
    args = [ "-c" "echo ${s.agpl-tool} > $out" ];
    buildInputs = [ s.agpl-tool ];
  };
}`
	if err := os.WriteFile(file, []byte(expr), 0o644); err != nil {
		t.Fatal(err)
	}
	pkgs, err := EvalPackages(context.Background(), "", file, "wrapped")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs.All {
		if p.Pname == "agpl-tool" {
			if !slices.Contains(p.Licenses, "AGPL-3.0-only") {
				t.Errorf("agpl-tool's licences: %v", p.Licenses)
			}
			return
		}
	}
	t.Errorf("the packages of wrapped lack its input agpl-tool: %v", pkgs.All)
}
