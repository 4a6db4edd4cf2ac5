package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	spdxjson "github.com/spdx/tools-golang/json"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/kix-project/kix/internal/image"
	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/internal/registry"
	"github.com/kix-project/kix/internal/sbom"
	"github.com/kix-project/kix/test/fixture"
	"github.com/kix-project/kix/test/testenv"
)

// supplyChainFixture builds attr of test/nix/sbom.nix, making the nix
// commands kix runs use the fixture configuration.
func supplyChainFixture(t *testing.T, attr string) string {
	t.Helper()
	if os.Getenv("NIX_CONF_DIR") == "" {
		t.Setenv("NIX_CONF_DIR", filepath.Join(fixture.Root(), "hack", "nix"))
	}
	fixture.Build(t, "busybox") // skips (or fails under CI) without Nix
	return strings.TrimSpace(fixture.RunNix(t, "nix-build", sbomNixFile(), "-A", attr, "--no-out-link"))
}

func sbomNixFile() string { return filepath.Join(fixture.Dir(), "sbom.nix") }

func testDB() string { return filepath.Join(fixture.Root(), "internal", "sbom", "testdata", "db") }

// decodeCDX decodes a CycloneDX document.
func decodeCDX(t *testing.T, doc string) *cdx.BOM {
	t.Helper()
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(strings.NewReader(doc), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatalf("not a CycloneDX document: %v\n%s", err, doc)
	}
	return &bom
}

// cdxPaths decodes a CycloneDX document and returns its components' store
// paths.
func cdxPaths(t *testing.T, doc string) []string {
	t.Helper()
	var paths []string
	for _, c := range *decodeCDX(t, doc).Components {
		paths = append(paths, c.BOMRef)
	}
	return paths
}

func TestSBOMTargets(t *testing.T) {
	app := supplyChainFixture(t, "app")
	closure := fixture.Closure(t, app)

	code, fromFile, stderr := run(t, "sbom", "-f", sbomNixFile(), "-A", "app")
	if code != 0 {
		t.Fatalf("kix sbom -f: exit %d: %s", code, stderr)
	}
	if diff := cmp.Diff(closure, cdxPaths(t, fromFile)); diff != "" {
		t.Errorf("components (-nix-store -qR +got):\n%s", diff)
	}
	if !strings.Contains(fromFile, `"expression": "AGPL-3.0-only"`) {
		t.Errorf("the document from -f lacks agpl-tool's licence")
	}
	_, again, _ := run(t, "sbom", "-f", sbomNixFile(), "-A", "app")
	if again != fromFile {
		t.Errorf("a second run differs:\n%s", cmp.Diff(fromFile, again))
	}

	// A store path, ./result-style symlink and image references name the
	// same closure and give the same document (no meta without -f).
	link := filepath.Join(t.TempDir(), "result")
	if err := os.Symlink(app, link); err != nil {
		t.Fatal(err)
	}
	_, byPath, _ := run(t, "sbom", app)
	for _, target := range []string{
		link,
		"nix.internal/" + nix.BaseName(app),
		"localhost:5000/" + nix.BaseName(app) + ":v1",
		"registry.example.org/" + nix.HashPart(app) + "@sha256:" + strings.Repeat("0", 64),
	} {
		code, out, stderr := run(t, "sbom", target)
		if code != 0 || out != byPath {
			t.Errorf("kix sbom %s: exit %d, %s; output differs from kix sbom %s:\n%s", target, code, stderr, app, cmp.Diff(byPath, out))
		}
	}
	if diff := cmp.Diff(closure, cdxPaths(t, byPath)); diff != "" {
		t.Errorf("components of the store path (-nix-store -qR +got):\n%s", diff)
	}
}

// TestSBOMReferrerAgrees checks that the SBOM kix registry serves as an
// image's referrer is the document kix sbom prints for its store path,
// derivation data included.
func TestSBOMReferrerAgrees(t *testing.T) {
	app := supplyChainFixture(t, "app-patched")
	hello := supplyChainFixture(t, "hello-patched")
	code, want, stderr := run(t, "sbom", app)
	if code != 0 {
		t.Fatalf("kix sbom: exit %d: %s", code, stderr)
	}
	got := referrerSBOM(t, app)
	if got != want {
		t.Errorf("the referrer SBOM differs from kix sbom %s (-kix sbom +referrer):\n%s", app, cmp.Diff(want, got))
	}

	// hello's patch is in its derivation, not in its store path.
	var resolves []string
	for _, c := range *decodeCDX(t, got).Components {
		if c.BOMRef != hello || c.Pedigree == nil || c.Pedigree.Patches == nil {
			continue
		}
		for _, p := range *c.Pedigree.Patches {
			if p.Resolves != nil {
				for _, r := range *p.Resolves {
					resolves = append(resolves, r.ID)
				}
			}
		}
	}
	if diff := cmp.Diff([]string{"CVE-2099-0001"}, resolves); diff != "" {
		t.Errorf("patches of %s in the referrer SBOM (-want +got):\n%s", hello, diff)
	}
}

// referrerSBOM serves the local store with kix's registry and returns the
// SBOM referrer of a store path's image, found as an OCI client finds it.
func referrerSBOM(t *testing.T, path string) string {
	t.Helper()
	cache, err := image.OpenBlobCache(t.TempDir(), image.DefaultCacheBytes)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Options{Builder: &image.Builder{Store: nix.NewLocalStore(), Cache: cache}}))
	t.Cleanup(srv.Close)
	repo, err := name.NewRepository(strings.TrimPrefix(srv.URL, "http://")+"/"+nix.BaseName(path), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(repo.Tag("latest"))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Referrers(repo.Digest(subject.String()))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].ArtifactType != sbom.CycloneDXMediaType {
		t.Fatalf("referrers of %s: %+v, want one CycloneDX SBOM", subject, im.Manifests)
	}
	artifact, err := remote.Image(repo.Digest(im.Manifests[0].Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := artifact.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("the referrer's layers: %v, %v", layers, err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	doc, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(doc)
}

func TestSBOMFormatsAndFlags(t *testing.T) {
	app := supplyChainFixture(t, "app")
	code, out, stderr := run(t, "sbom", app, "--format", "spdx")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc spdx.Document
	if err := spdxjson.ReadInto(strings.NewReader(out), &doc); err != nil {
		t.Fatalf("not an SPDX document: %v", err)
	}
	var paths []string
	for _, p := range doc.Packages {
		paths = append(paths, p.PackageFileName)
	}
	if diff := cmp.Diff(fixture.Closure(t, app), paths); diff != "" {
		t.Errorf("SPDX packages (-nix-store -qR +got):\n%s", diff)
	}
	if doc.CreationInfo.Created != "1970-01-01T00:00:00Z" {
		t.Errorf("created %q without --timestamp", doc.CreationInfo.Created)
	}

	// The serial derived from the content, then a new one each run.
	serials := map[string]bool{}
	for _, flags := range [][]string{nil, {"--random-serial"}, {"--random-serial"}} {
		code, out, stderr := run(t, append([]string{"sbom", app}, flags...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", flags, code, stderr)
		}
		serial := decodeCDX(t, out).SerialNumber
		if !strings.HasPrefix(serial, "urn:uuid:") || serials[serial] {
			t.Errorf("kix sbom %v: serial %q; want a UUID other than %v", flags, serial, serials)
		}
		serials[serial] = true
	}

	before := time.Now().UTC().Truncate(time.Second)
	_, stamped, _ := run(t, "sbom", app, "--timestamp")
	after := time.Now().UTC()
	stamp, err := time.Parse(time.RFC3339, decodeCDX(t, stamped).Metadata.Timestamp)
	if err != nil || stamp.Before(before) || stamp.After(after) {
		t.Errorf("--timestamp: %v (%v); want the time kix sbom ran, between %v and %v", stamp, err, before, after)
	}

	code, out, stderr = run(t, "sbom", app, "--buildtime")
	if code != 0 {
		t.Fatalf("--buildtime: exit %d: %s", code, stderr)
	}
	if paths := cdxPaths(t, out); !slices.ContainsFunc(paths, func(p string) bool { return strings.HasSuffix(p, "-busybox-static-bootstrap") }) {
		t.Errorf("--buildtime lacks the bootstrap source: %v", paths)
	}
}

func TestSBOMBadInput(t *testing.T) {
	app := supplyChainFixture(t, "app")
	missing := nix.StoreDir + "/00000000000000000000000000000000-missing-1.0"
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"sbom", missing}, ExitFailure, missing},
		{[]string{"sbom", "./no-such-result"}, ExitFailure, "no-such-result"},
		{[]string{"sbom", "nix.internal/not-a-store-hash"}, ExitFailure, "not an image reference served by kix"},
		{[]string{"sbom", "nix.internal/pkgs/hello"}, ExitUsage, "-f FILE -A ATTR"},
		{[]string{"sbom", app, "--format", "xml"}, ExitUsage, `unknown --format "xml"`},
		{[]string{"sbom"}, ExitUsage, "give a TARGET"},
		{[]string{"sbom", app, "-f", sbomNixFile()}, ExitUsage, "not both"},
		{[]string{"sbom", "-f", sbomNixFile(), "-A", "no-such-attr"}, ExitFailure, `no attribute "no-such-attr"`},
		{[]string{"sbom", "-f", filepath.Join(t.TempDir(), "missing.nix")}, ExitFailure, "missing.nix"},
		{[]string{"vulns", app}, ExitUsage, "--db is required"},
		{[]string{"vulns", app, "--db", testDB(), "--fail-on", "severe"}, ExitUsage, `unknown severity "severe"`},
		{[]string{"vulns", app, "--db", testDB(), "-o", "xml"}, ExitUsage, `unknown output format "xml" (want table, json, yaml or sarif)`},
		{[]string{"licenses", app, "-o", "sarif"}, ExitUsage, `unknown output format "sarif" (want table, json or yaml)`},
		{[]string{"version", "-o", "table"}, ExitUsage, `unknown output format "table" (want json or yaml)`},
		{[]string{"vulns", missing, "--db", testDB()}, exitError, missing},
		{[]string{"licenses", app, "--policy", "policy.yaml"}, ExitUsage, "--policy needs -f"},
		{[]string{"licenses", "-f", sbomNixFile(), "-A", "app", "--policy", "/no/such/policy.yaml"}, exitError, "/no/such/policy.yaml"},
	} {
		code, _, stderr := run(t, tc.args...)
		if code != tc.code || !strings.HasPrefix(stderr, "error: ") || !strings.Contains(stderr, tc.want) {
			t.Errorf("kix %s: exit %d, stderr %q; want exit %d and an error containing %q",
				strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
	}
}

func TestVulnsCorruptDatabase(t *testing.T) {
	app := supplyChainFixture(t, "app")
	db := t.TempDir()
	bad := filepath.Join(db, "nvdcve-2.0-2099.json")
	if err := os.WriteFile(bad, []byte(`{"format": "NVD_CVE", "vulnerabilities": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "vulns", app, "--db", db)
	if code != exitError || !strings.Contains(stderr, bad) {
		t.Errorf("exit %d, stderr %q; want exit %d naming %s", code, stderr, exitError, bad)
	}
}

func TestVulnsCommand(t *testing.T) {
	app := supplyChainFixture(t, "app")
	patched := supplyChainFixture(t, "app-patched")

	code, out, _ := run(t, "vulns", app, "--db", testDB())
	if code != exitFindings || !strings.Contains(out, "CVE-2099-0001") || !strings.Contains(out, "CVE-2099-0002") {
		t.Errorf("app: exit %d, want 1 with CVE-2099-0001 and -0002:\n%s", code, out)
	}
	code, out, _ = run(t, "vulns", "-f", sbomNixFile(), "-A", "app-patched", "--db", testDB(), "-o", "json")
	var report sbom.Report
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	var reported, suppressed []string
	for _, f := range report.Findings {
		reported = append(reported, f.ID)
	}
	for _, f := range report.Suppressed {
		suppressed = append(suppressed, f.ID+": "+f.Suppressed)
	}
	if code != exitFindings || slices.Contains(reported, "CVE-2099-0001") {
		t.Errorf("app-patched: exit %d, reported %v; CVE-2099-0001 is patched", code, reported)
	}
	if diff := cmp.Diff([]string{"CVE-2099-0001: patched by CVE-2099-0001.patch"}, suppressed); diff != "" {
		t.Errorf("suppressed (-want +got):\n%s", diff)
	}

	// --fail-on critical fails on busybox's critical CVE until a whitelist
	// entry accepts it, and again once the entry has expired.
	if code, _, _ := run(t, "vulns", patched, "--db", testDB(), "--fail-on", "critical"); code != exitFindings {
		t.Errorf("--fail-on critical: exit %d, want 1", code)
	}
	dir := t.TempDir()
	for until, want := range map[string]int{"2999-12-31": 0, "2000-01-01": exitFindings} {
		wl := filepath.Join(dir, "wl-"+until+".yaml")
		os.WriteFile(wl, []byte("- id: CVE-2099-0002\n  reason: applet not used\n  until: "+until+"\n"), 0o644)
		code, out, stderr := run(t, "vulns", patched, "--db", testDB(), "--fail-on", "critical", "--whitelist", wl)
		if code != want {
			t.Errorf("whitelist until %s: exit %d, want %d\n%s%s", until, code, want, out, stderr)
		}
		if want != 0 && !strings.Contains(out, "expired on 2000-01-01") {
			t.Errorf("expired whitelist entry not mentioned:\n%s", out)
		}
	}
}

func TestVulnsSARIF(t *testing.T) {
	app := supplyChainFixture(t, "app-patched")
	code, out, stderr := run(t, "vulns", app, "--db", testDB(), "-o", "sarif")
	if code != exitFindings {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !json.Valid([]byte(out)) {
		t.Fatalf("-o sarif is not JSON:\n%s", out)
	}
	file := filepath.Join(t.TempDir(), "vulns.sarif")
	os.WriteFile(file, []byte(out), 0o644)
	schema := filepath.Join(fixture.Root(), "internal", "sbom", "testdata", "sarif-schema-2.1.0.json")
	if msg, err := exec.Command(jsonSchema(t), schema, file).CombinedOutput(); err != nil {
		t.Errorf("the SARIF schema rejects the log: %v\n%s", err, msg)
	}
}

// jsonSchema builds hack/tools/sbomutility's JSON Schema validator.
func jsonSchema(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(fixture.Root(), "hack", "go-tool.sh"), "hack/tools/sbomutility",
		"github.com/kix-project/kix/hack/tools/sbomutility/jsonschema")
	cmd.Env = append(os.Environ(), "GONOSUMDB=github.com/CycloneDX/sbom-utility")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		testenv.Missing(t, "building the jsonschema tool: "+err.Error()+"\n"+stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func TestLicensesCommand(t *testing.T) {
	supplyChainFixture(t, "app")
	dir := t.TempDir()
	deny := filepath.Join(dir, "deny.yaml")
	os.WriteFile(deny, []byte("deny: [AGPL-*]\n"), 0o644)
	allow := filepath.Join(dir, "allow.yaml")
	os.WriteFile(allow, []byte("allow: [MIT, CC0-1.0, GPL-*, AGPL-3.0-only]\n"), 0o644)

	code, out, stderr := run(t, "licenses", "-f", sbomNixFile(), "-A", "app", "--policy", deny)
	if code != exitFindings {
		t.Errorf("deny AGPL: exit %d, want 1\n%s%s", code, out, stderr)
	}
	if !strings.Contains(stderr, `agpl-tool 0.9.0 (`) || !strings.Contains(stderr, `licence AGPL-3.0-only violates policy rule deny[0] "AGPL-*"`) {
		t.Errorf("the violation does not name the component and the rule:\n%s", stderr)
	}
	if !strings.Contains(out, "VIOLATION") {
		t.Errorf("the table does not mark the violation:\n%s", out)
	}

	code, out, stderr = run(t, "licenses", "-f", sbomNixFile(), "-A", "app", "--policy", allow, "-o", "json")
	if code != 0 {
		t.Errorf("allow AGPL: exit %d, want 0\n%s%s", code, out, stderr)
	}
	var report licenseReport
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, c := range report.Components {
		got[c.Package] = c.Licenses
	}
	want := map[string][]string{
		"kix-app": {"MIT"}, "agpl-tool": {"AGPL-3.0-only"}, "hello": {"GPL-3.0-or-later"},
		"hello-greeting": {"CC0-1.0"}, "busybox": {"GPL-2.0-only"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("licences (-want +got):\n%s", diff)
	}

	// A licence without an SPDX id, and a policy that denies it.
	unfree := filepath.Join(dir, "unfree.yaml")
	os.WriteFile(unfree, []byte("deny: [LicenseRef-nixpkgs-unfree]\n"), 0o644)
	code, _, stderr = run(t, "licenses", "-f", sbomNixFile(), "-A", "app-unfree", "--policy", unfree)
	if code != exitFindings || !strings.Contains(stderr, "unfree-blob 1.0") {
		t.Errorf("deny unfree: exit %d\n%s", code, stderr)
	}

	// Licences given as strings: "unfree" is denied as the licence attrs
	// are, and "mit" is SPDX's MIT.
	supplyChainFixture(t, "legacy-licences")
	code, _, stderr = run(t, "licenses", "-f", sbomNixFile(), "-A", "legacy-licences", "--policy", unfree)
	if code != exitFindings || !strings.Contains(stderr, "legacy-licences 1.0") {
		t.Errorf("deny unfree, given as a string: exit %d\n%s", code, stderr)
	}
	code, out, stderr = run(t, "licenses", "-f", sbomNixFile(), "-A", "legacy-licences", "--policy", allow, "-o", "json")
	if code != exitFindings {
		t.Errorf("allow MIT, given unfree too: exit %d, want 1\n%s%s", code, out, stderr)
	}
	report = licenseReport{}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatal(err)
	}
	if len(report.Components) != 1 || !slices.Equal(report.Components[0].Licenses, []string{"LicenseRef-nixpkgs-unfree", "MIT"}) {
		t.Errorf("string licences: %+v", report.Components)
	}
}

// -A names the output the value stands for, as nix-build links it:
// libgreet.dev is the dev output's closure, not out's.
func TestSBOMOfAnOutput(t *testing.T) {
	dev := supplyChainFixture(t, "libgreet.dev")
	code, doc, stderr := run(t, "sbom", "-f", sbomNixFile(), "-A", "libgreet.dev")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if diff := cmp.Diff(fixture.Closure(t, dev), cdxPaths(t, doc)); diff != "" {
		t.Errorf("components of libgreet.dev (-nix-store -qR +got):\n%s", diff)
	}
}
