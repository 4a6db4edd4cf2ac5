package sbom

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-cmp/cmp"
	spdxjson "github.com/spdx/tools-golang/json"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/test/fixture"
)

func encode(t *testing.T, d *Document, enc func(*bytes.Buffer, *Document) error) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := enc(&b, d); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func cdxEnc(b *bytes.Buffer, d *Document) error  { return EncodeCycloneDX(b, d) }
func spdxEnc(b *bytes.Buffer, d *Document) error { return EncodeSPDX(b, d) }

// TestRuntimeSBOMIsTheClosure checks both formats against nix-store -qR:
// every store path once, nothing else; both parse with their libraries and
// pass their JSON schemas.
func TestRuntimeSBOMIsTheClosure(t *testing.T) {
	d := runtimeDoc(t, "app")
	want := fixture.Closure(t, build(t, "app"))

	cdxDoc := encode(t, d, cdxEnc)
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(cdxDoc), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatalf("cyclonedx-go cannot decode the document: %v", err)
	}
	if bom.SpecVersion != cdx.SpecVersion1_6 {
		t.Errorf("specVersion %s, want 1.6", bom.SpecVersion)
	}
	var gotCDX []string
	for _, c := range *bom.Components {
		gotCDX = append(gotCDX, property(c, PropStorePath))
		if c.BOMRef != property(c, PropStorePath) {
			t.Errorf("bom-ref %q is not the store path %q", c.BOMRef, property(c, PropStorePath))
		}
	}
	if diff := cmp.Diff(want, gotCDX); diff != "" {
		t.Errorf("CycloneDX components (-nix-store -qR +got):\n%s", diff)
	}

	spdxDoc := encode(t, d, spdxEnc)
	var parsed spdx.Document
	if err := spdxjson.ReadInto(bytes.NewReader(spdxDoc), &parsed); err != nil {
		t.Fatalf("tools-golang cannot read the document: %v", err)
	}
	var gotSPDX []string
	for _, p := range parsed.Packages {
		gotSPDX = append(gotSPDX, p.PackageFileName)
	}
	if diff := cmp.Diff(want, gotSPDX); diff != "" {
		t.Errorf("SPDX packages (-nix-store -qR +got):\n%s", diff)
	}

	for name, doc := range map[string][]byte{"CycloneDX": cdxDoc, "SPDX": spdxDoc} {
		if err := validate(t, doc); err != nil {
			t.Errorf("the %s document does not pass its schema: %v", name, err)
		}
	}
}

func property(c cdx.Component, name string) string {
	if c.Properties == nil {
		return ""
	}
	for _, p := range *c.Properties {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// TestRuntimeSBOMDependencies checks the reference graph against Nix.
func TestRuntimeSBOMDependencies(t *testing.T) {
	d := runtimeDoc(t, "app")
	for _, c := range d.Components {
		refs := strings.Fields(fixture.RunNix(t, "nix-store", "--query", "--references", c.StorePath))
		refs = slices.DeleteFunc(refs, func(r string) bool { return r == c.StorePath })
		slices.Sort(refs)
		if diff := cmp.Diff(refs, c.DependsOn, cmpEmpty); diff != "" {
			t.Errorf("%s depends on (-nix-store --references +got):\n%s", c.StorePath, diff)
		}
	}
}

// TestRuntimeSBOMStoreMetadata checks every component's deriver, NAR hash
// and NAR size against nix path-info.
func TestRuntimeSBOMStoreMetadata(t *testing.T) {
	d := runtimeDoc(t, "app-patched")
	infos := pathInfos(t, build(t, "app-patched"))
	type meta struct {
		Deriver, NarHash string
		NarSize          uint64
	}
	want, got := map[string]meta{}, map[string]meta{}
	for p, info := range infos {
		want[p] = meta{info.Deriver, info.narHashHex, info.NarSize}
	}
	for _, c := range d.Components {
		got[c.StorePath] = meta{c.Deriver, c.NarHash, c.NarSize}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("store metadata (-nix path-info +got):\n%s", diff)
	}
}

// nixPathInfo is an entry of nix path-info --json.
type nixPathInfo struct {
	Path       string   `json:"path"`
	NarHash    string   `json:"narHash"`
	NarSize    uint64   `json:"narSize"`
	Deriver    string   `json:"deriver"`
	References []string `json:"references"`

	narHashHex string // NarHash as nix hash to-base16 prints it
}

// pathInfos returns what nix path-info says of the closure of path, NAR
// hashes also in hex as Nix converts them.
func pathInfos(t *testing.T, path string) map[string]*nixPathInfo {
	t.Helper()
	var list []*nixPathInfo
	if err := json.Unmarshal([]byte(fixture.RunNix(t, "nix", "path-info", "--json", "--recursive", path)), &list); err != nil {
		t.Fatal(err)
	}
	args := []string{"hash", "to-base16"}
	for _, info := range list {
		args = append(args, info.NarHash)
	}
	hexes := strings.Fields(fixture.RunNix(t, "nix", args...))
	if len(hexes) != len(list) {
		t.Fatalf("nix %s: %d hashes for %d paths", strings.Join(args, " "), len(hexes), len(list))
	}
	infos := map[string]*nixPathInfo{}
	for i, info := range list {
		info.narHashHex = hexes[i]
		infos[info.Path] = info
	}
	return infos
}

var cmpEmpty = cmp.Transformer("empty", func(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
})

// TestRuntimeSBOMMeta checks what the Nix expression and derivations add.
func TestRuntimeSBOMMeta(t *testing.T) {
	d := runtimeDoc(t, "app-patched")
	byName := map[string]*Component{}
	for _, c := range d.Components {
		byName[c.Name] = c
	}
	hello := byName["hello"]
	if hello == nil {
		t.Fatalf("no hello among %v", d.Components)
	}
	path := build(t, "hello-patched")
	info := pathInfos(t, path)[path]
	var drv map[string]struct {
		Env map[string]string `json:"env"`
	}
	if err := json.Unmarshal([]byte(fixture.RunNix(t, "nix", "show-derivation", info.Deriver)), &drv); err != nil {
		t.Fatal(err)
	}
	want := &Component{
		StorePath:   path,
		Name:        "hello",
		Version:     "2.12.1",
		Output:      "out",
		Deriver:     info.Deriver,
		NarHash:     info.narHashHex,
		NarSize:     info.NarSize,
		Licenses:    []string{"GPL-3.0-or-later"},
		Homepage:    "https://www.gnu.org/software/hello/",
		Description: "A program that produces a familiar, friendly greeting",
		CPE:         "cpe:2.3:a:gnu:hello:2.12.1:*:*:*:*:*:*:*",
		Patches:     strings.Fields(drv[info.Deriver].Env["patches"]),
		DependsOn:   slices.DeleteFunc(slices.Clone(info.References), func(r string) bool { return r == path }),
	}
	if len(want.Patches) != 1 || want.NarHash == "" || want.NarSize == 0 || want.Deriver == "" {
		t.Fatalf("Nix says less than the fixture holds: %+v", want)
	}
	if diff := cmp.Diff(want, hello); diff != "" {
		t.Errorf("hello (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"CVE-2099-0001"}, hello.PatchedCVEs()); diff != "" {
		t.Errorf("PatchedCVEs (-want +got):\n%s", diff)
	}
	if c := byName["agpl-tool"]; c == nil || !slices.Equal(c.Licenses, []string{"AGPL-3.0-only"}) {
		t.Errorf("agpl-tool: %+v", c)
	}
}

// TestEnrichExpressionWins checks the order Enrich applies its sources in:
// a package whose attributes rename its derivation is described by the
// attributes, and keeps its derivation's patches.
func TestEnrichExpressionWins(t *testing.T) {
	withNixConf(t)
	fixture.Build(t, "busybox") // skips (or fails under CI) without Nix
	file := filepath.Join(t.TempDir(), "renamed.nix")
	writeFile(t, file, `
let
  fixtures = import `+fixture.Dir()+` { };
  greeter = fixtures.lib.mkDerivation {
    pname = "greeter";
    version = "1.0";
    patches = [ (builtins.toFile "CVE-2099-0009.patch" "a made-up fix\n") ];
    script = "mkdir $out";
  };
in
{
  renamed = greeter // { pname = "greeter-cli"; version = "1.0.1"; };
}
`)
	out := strings.TrimSpace(fixture.RunNix(t, "nix-build", file, "-A", "renamed", "--no-out-link"))
	c := describe(t, file, "renamed", out).Component(out)
	if c == nil {
		t.Fatalf("no component for %s", out)
	}
	if c.Name != "greeter-cli" || c.Version != "1.0.1" {
		t.Errorf("described as %s %s; want the attributes' greeter-cli 1.0.1 over the derivation's greeter 1.0", c.Name, c.Version)
	}
	if diff := cmp.Diff([]string{"CVE-2099-0009"}, c.PatchedCVEs()); diff != "" {
		t.Errorf("patches from the derivation (-want +got):\n%s", diff)
	}
}

// TestFixtureGoldens pins both encodings of the fixture app's SBOM. Two
// runs give the same bytes; the goldens hold the document with the
// host's store hashes, NAR hashes and busybox NAR size replaced
// (hostIndependent), so they hold on any machine.
func TestFixtureGoldens(t *testing.T) {
	for _, f := range []struct {
		file string
		enc  func(*bytes.Buffer, *Document) error
	}{
		{"app.cdx.json", cdxEnc},
		{"app.spdx.json", spdxEnc},
	} {
		t.Run(f.file, func(t *testing.T) {
			d := runtimeDoc(t, "app-patched")
			first := encode(t, d, f.enc)
			second := encode(t, runtimeDoc(t, "app-patched"), f.enc)
			if !bytes.Equal(first, second) {
				t.Errorf("two runs differ:\n%s", cmp.Diff(string(first), string(second)))
			}
			golden(t, f.file, encode(t, hostIndependent(t, d), f.enc))
		})
	}
}

// TestBuildTimeSBOM checks a derivation graph's document against what
// nix-store says the .drv closure holds: its sources, and the outputs of
// its derivations.
func TestBuildTimeSBOM(t *testing.T) {
	withNixConf(t)
	out := build(t, "app-patched")
	drvPath := strings.TrimSpace(fixture.RunNix(t, "nix-store", "--query", "--deriver", out))
	graph, err := nix.DerivationGraph(drvPath)
	if err != nil {
		t.Fatal(err)
	}
	d, err := FromDerivations([]string{drvPath}, graph, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range strings.Fields(fixture.RunNix(t, "nix-store", "--query", "--requisites", drvPath)) {
		if !strings.HasSuffix(p, ".drv") {
			want = append(want, p)
			continue
		}
		want = append(want, strings.Fields(fixture.RunNix(t, "nix-store", "--query", "--outputs", p))...)
	}
	slices.Sort(want)
	var got []string
	for _, c := range d.Components {
		got = append(got, c.StorePath)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("build-time components (-nix-store +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{out}, d.Roots); diff != "" {
		t.Errorf("roots (-want +got):\n%s", diff)
	}
	// The patch is a source hello's output depends on.
	hello := d.Component(build(t, "hello-patched"))
	if hello == nil || !slices.ContainsFunc(hello.DependsOn, func(p string) bool { return strings.HasSuffix(p, "-CVE-2099-0001.patch") }) {
		t.Errorf("hello does not depend on its patch: %+v", hello)
	}
	// busybox-static-bootstrap is a source added with builtins.path: no
	// deriver, no output name, and no version by Nix's rule.
	var bootstrap *Component
	for _, c := range d.Components {
		if strings.HasSuffix(c.StorePath, "-busybox-static-bootstrap") {
			bootstrap = c
		}
	}
	if bootstrap == nil || bootstrap.Name != "busybox-static-bootstrap" || bootstrap.Version != "" || bootstrap.Output != "" || bootstrap.Deriver != "" {
		t.Errorf("busybox-static-bootstrap: %+v", bootstrap)
	}
	if err := validate(t, encode(t, d, cdxEnc)); err != nil {
		t.Errorf("CycloneDX: %v", err)
	}
	if err := validate(t, encode(t, d, spdxEnc)); err != nil {
		t.Errorf("SPDX: %v", err)
	}
}
