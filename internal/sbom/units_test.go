package sbom

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kix-project/kix/internal/nix"
)

func TestParseDrvName(t *testing.T) {
	for _, tc := range []struct{ in, name, version string }{
		{"hello-2.12.1", "hello", "2.12.1"},
		{"busybox-static-bootstrap", "busybox-static-bootstrap", ""},
		{"libgreet-0.3.0-dev", "libgreet", "0.3.0-dev"},
		{"nix-2.8.0pre20220311", "nix", "2.8.0pre20220311"},
		{"python3.11-requests-2.31.0", "python3.11-requests", "2.31.0"},
		{"source", "source", ""},
		{"foo-", "foo-", ""},
		{"gcc-wrapper-_12", "gcc-wrapper", "_12"}, // Nix: any non-letter starts the version
	} {
		name, version := ParseDrvName(tc.in)
		if name != tc.name || version != tc.version {
			t.Errorf("ParseDrvName(%q) = %q, %q; want %q, %q", tc.in, name, version, tc.name, tc.version)
		}
	}
}

func TestComponentOf(t *testing.T) {
	const h = "/nix/store/0nkx8yr12ba3dqkqpk6zx6qd2bnl1b07-"
	const d = "/nix/store/5jik8faxj35w4548g42qjmxkdrqk7lg5-"
	for _, tc := range []struct {
		path, deriver, name, version, output, purl string
	}{
		{h + "hello-2.12.1", d + "hello-2.12.1.drv", "hello", "2.12.1", "out",
			"pkg:nix/hello@2.12.1?outputhash=0nkx8yr12ba3dqkqpk6zx6qd2bnl1b07"},
		{h + "libgreet-0.3.0-dev", d + "libgreet-0.3.0.drv", "libgreet", "0.3.0", "dev",
			"pkg:nix/libgreet@0.3.0?output=dev&outputhash=0nkx8yr12ba3dqkqpk6zx6qd2bnl1b07"},
		{h + "libgreet-0.3.0-dev", "", "libgreet", "0.3.0-dev", "",
			"pkg:nix/libgreet@0.3.0-dev?outputhash=0nkx8yr12ba3dqkqpk6zx6qd2bnl1b07"},
		{h + "busybox-static-bootstrap", "", "busybox-static-bootstrap", "", "",
			"pkg:nix/busybox-static-bootstrap?outputhash=0nkx8yr12ba3dqkqpk6zx6qd2bnl1b07"},
		{h + "c++-lib-1.0", d + "other-name.drv", "c++-lib", "1.0", "",
			"pkg:nix/c%2B%2B-lib@1.0?outputhash=0nkx8yr12ba3dqkqpk6zx6qd2bnl1b07"},
		{h + "CVE-2099-0001.patch", "", "CVE-2099-0001.patch", "", "",
			"pkg:nix/CVE-2099-0001.patch?outputhash=0nkx8yr12ba3dqkqpk6zx6qd2bnl1b07"},
		{h + "foo-1.2.tar.gz", "", "foo-1.2.tar.gz", "", "",
			"pkg:nix/foo-1.2.tar.gz?outputhash=0nkx8yr12ba3dqkqpk6zx6qd2bnl1b07"},
	} {
		c, err := componentOf(tc.path, tc.deriver, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := []string{c.Name, c.Version, c.Output, c.PURL()}
		if diff := cmp.Diff([]string{tc.name, tc.version, tc.output, tc.purl}, got); diff != "" {
			t.Errorf("%s (deriver %q) (-want +got):\n%s", tc.path, tc.deriver, diff)
		}
	}
}

func TestNormalizeLicense(t *testing.T) {
	for in, want := range map[string]string{
		"MIT":                        "MIT",
		"GPL-2.0+":                   "GPL-2.0+",
		"LicenseRef-nixpkgs-unfree":  "LicenseRef-nixpkgs-unfree",
		"Some Custom License":        "LicenseRef-Some-Custom-License",
		"LicenseRef-a b":             "LicenseRef-a-b",
		"LicenseRef-nixpkgs-foo+bar": "LicenseRef-nixpkgs-foo-bar",
		"!!!":                        "LicenseRef-unknown",
		// meta.license = "mit" or "gpl-2.0+": SPDX's own spelling.
		"LicenseRef-nixpkgs-mit":      "MIT",
		"LicenseRef-nixpkgs-gpl-2.0+": "GPL-2.0+",
		"LicenseRef-nixpkgs-gpl-2.0":  "GPL-2.0",
		"LicenseRef-":                 "LicenseRef-unknown",
		// An exception stays with its licence, as SPDX writes it.
		"Apache-2.0 WITH LLVM-exception": "Apache-2.0 WITH LLVM-exception",
		"LicenseRef-x WITH y":            "LicenseRef-x-WITH-y",
	} {
		if got := NormalizeLicense(in); got != want {
			t.Errorf("NormalizeLicense(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	// From Nix's own tests of builtins.compareVersions.
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0", "2.3", -1},
		{"2.1", "2.3", -1},
		{"2.3", "2.3", 0},
		{"2.5", "2.3", 1},
		{"3.1", "2.3", 1},
		{"2.3.1", "2.3", 1},
		{"2.3.1", "2.3a", 1},
		{"2.3pre1", "2.3", -1},
		{"2.3pre3", "2.3pre12", -1},
		{"2.3a", "2.3c", -1},
		{"2.3pre1", "2.3c", -1},
		{"2.3pre1", "2.3q", -1},
		{"1.35.0", "1.36.0", -1},
		{"2.12.1", "2.12", 1},
	} {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestCVSSBaseScore(t *testing.T) {
	for vector, want := range map[string]float64{
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H": 9.8,
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N": 6.1,
		"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H": 7.8,
		"CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N": 5.9,
		"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H": 9.9,
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N": 0,
		// CVSS v4.0: the FIRST calculator's scores.
		"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N": 9.3,
		"CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N": 8.5,
		"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N": 0,
	} {
		got, err := CVSSBaseScore(vector)
		if err != nil || got != want {
			t.Errorf("CVSSBaseScore(%s) = %v, %v; want %v", vector, got, err, want)
		}
	}
	for _, bad := range []string{
		"CVSS:2.0/AV:N", "AV:N/AC:L/Au:N/C:P/I:P/A:P", "CVSS:3.1/AV:N/AC:L",
		"CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:4.0/AV:N/AC:L",
	} {
		if _, err := CVSSBaseScore(bad); err == nil {
			t.Errorf("CVSSBaseScore(%s) did not fail", bad)
		}
	}
}

// An OSV record that rates itself with a CVSS v4 vector alone is rated
// by it, not left unknown.
func TestOSVSeverityFromCVSS4(t *testing.T) {
	r := osvRecord{Severity: []osvSeverity{{Type: "CVSS_V4", Score: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}}}
	if score, sev := osvSeverityOf(r); score != 9.3 || sev != SeverityCritical {
		t.Errorf("osvSeverityOf = %v, %s; want 9.3, critical", score, sev)
	}
	r.Severity = append(r.Severity, osvSeverity{Type: "CVSS_V3", Score: "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"})
	if score, _ := osvSeverityOf(r); score != 9.3 {
		t.Errorf("osvSeverityOf with a lower v3 score too = %v; want the higher, 9.3", score)
	}
}

func TestOSVRanges(t *testing.T) {
	ev := func(kind, v string) osvEvent {
		switch kind {
		case "i":
			return osvEvent{Introduced: v}
		case "f":
			return osvEvent{Fixed: v}
		case "l":
			return osvEvent{LastAffected: v}
		}
		return osvEvent{Limit: v}
	}
	r := osvRange{Type: "ECOSYSTEM", Events: []osvEvent{ev("f", "1.2"), ev("i", "1.0"), ev("i", "2.0"), ev("l", "2.1")}}
	for v, want := range map[string]bool{"0.9": false, "1.0": true, "1.1.5": true, "1.2": false, "1.9": false, "2.0": true, "2.1": true, "2.1.1": false} {
		if got := r.affects(v); got != want {
			t.Errorf("%s in %+v: %v, want %v", v, r.Events, got, want)
		}
	}
	zero := osvRange{Events: []osvEvent{ev("i", "0"), ev("limit", "3")}}
	if !zero.affects("0.1") || zero.affects("3.0") {
		t.Errorf("introduced 0, limit 3: wrong")
	}
	// SEMVER ranges order pre-releases before their release.
	rc := osvRange{Type: "SEMVER", Events: []osvEvent{ev("i", "2.0.0-rc1"), ev("f", "2.0.1")}}
	alpha := osvRange{Type: "SEMVER", Events: []osvEvent{ev("i", "1.0.0-alpha"), ev("f", "1.0.0")}}
	for _, tc := range []struct {
		r       osvRange
		version string
		want    bool
	}{{rc, "2.0.0", true}, {rc, "1.9.9", false}, {rc, "2.0.1", false}, {alpha, "1.0.0", false}, {alpha, "1.0.1", false}, {alpha, "0.9.0", false}} {
		if got := tc.r.affects(tc.version); got != tc.want {
			t.Errorf("%s in %+v: %v, want %v", tc.version, tc.r.Events, got, tc.want)
		}
	}
}

// A withdrawn OSV record is no advisory, and a distribution's record (whose
// versions are its own builds) does not match an upstream version.
func TestOSVWithdrawnAndDistroRecords(t *testing.T) {
	withdrawn := `{"id": "KIX-W-1", "withdrawn": "2024-02-01T00:00:00Z", "affected": [{"package": {"name": "busybox"}, "versions": ["1.35.0"]}]}`
	if a, err := parseOSV([]byte(withdrawn)); a != nil || err != nil {
		t.Errorf("a withdrawn record: %v, %v; want nothing", a, err)
	}
	record := func(ecosystem string) *Advisory {
		a, err := parseOSV([]byte(`{"id": "X-1", "affected": [{"package": {"ecosystem": "` + ecosystem + `", "name": "busybox"},
			"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.35.0-r0"}]}]}]}`))
		if err != nil || a == nil {
			t.Fatalf("%s record: %v, %v", ecosystem, a, err)
		}
		return a
	}
	if record("Alpine:v3.19").matchOSV("busybox", "1.35.0") {
		t.Error("an Alpine record matched upstream busybox 1.35.0")
	}
	if !record("").matchOSV("busybox", "1.34.0") {
		t.Error("a record of no ecosystem did not match busybox 1.34.0")
	}
}

func TestCPEMatching(t *testing.T) {
	hello, err := parseCPE(`cpe:2.3:a:gnu:hello\:world:2.12.1:*:*:*:*:*:*:*`)
	if err != nil || hello.product != "hello:world" || hello.version != "2.12.1" {
		t.Fatalf("parseCPE with an escaped colon: %+v, %v", hello, err)
	}
	generated, _ := parseCPE(ComponentCPE(&Component{Name: "Hello", Version: "2.12.1"}))
	for _, tc := range []struct {
		m    cpeMatch
		want bool
	}{
		{cpeMatch{Criteria: "cpe:2.3:a:gnu:hello:2.12.1"}, true},
		{cpeMatch{Criteria: "cpe:2.3:a:gnu:hello:2.12.2"}, false},
		{cpeMatch{Criteria: "cpe:2.3:a:other:hello:*", VersionEndExcluding: "3"}, true},
		{cpeMatch{Criteria: "cpe:2.3:a:gnu:hello:*", VersionStartExcluding: "2.12.1"}, false},
		{cpeMatch{Criteria: "cpe:2.3:a:gnu:hello:*", VersionEndIncluding: "2.12.1"}, true},
		{cpeMatch{Criteria: "cpe:2.3:o:gnu:hello:*"}, false},
		{cpeMatch{Criteria: "cpe:2.3:a:gnu:goodbye:*"}, false},
	} {
		m := tc.m
		m.cpe, _ = parseCPE(m.Criteria + ":*:*:*:*:*:*:*")
		if got := m.matches(generated); got != tc.want {
			t.Errorf("%s %+v against %s: %v, want %v", m.Criteria, m, ComponentCPE(&Component{Name: "Hello", Version: "2.12.1"}), got, tc.want)
		}
	}
}

func TestPolicy(t *testing.T) {
	d := &Document{Components: []*Component{
		{StorePath: "/nix/store/00000000000000000000000000000001-a-1", Name: "a", Version: "1", Licenses: []string{"MIT"}},
		{StorePath: "/nix/store/00000000000000000000000000000002-b-1", Name: "b", Version: "1", Licenses: []string{"AGPL-3.0-only", "MIT"}},
		{StorePath: "/nix/store/00000000000000000000000000000003-c-1", Name: "c", Version: "1", Licenses: []string{"BSD-3-Clause"}},
		{StorePath: "/nix/store/00000000000000000000000000000004-d-1", Name: "d", Version: "1"},
		{StorePath: "/nix/store/00000000000000000000000000000005-e-1", Name: "e", Version: "1", Licenses: []string{"agpl-3.0-or-later"}},
		{StorePath: "/nix/store/00000000000000000000000000000006-f-1", Name: "f", Version: "1", Licenses: []string{"AGPL-3.0-only WITH x-exception"}},
		{StorePath: "/nix/store/00000000000000000000000000000007-g-1", Name: "g", Version: "1", Licenses: []string{"MIT WITH y-exception"}},
	}}
	file := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, file, `
deny: [AGPL-*]
allow: [MIT, "GPL-*", agpl-*]
unknown: deny
exceptions:
  - package: e
    reason: only used in tests
`)
	p, err := LoadPolicy(file)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range p.Check(d) {
		got = append(got, v.String())
	}
	want := []string{
		`b 1 (/nix/store/00000000000000000000000000000002-b-1): licence AGPL-3.0-only violates policy rule deny[0] "AGPL-*"`,
		`c 1 (/nix/store/00000000000000000000000000000003-c-1): licence BSD-3-Clause violates policy rule allow (not listed)`,
		`d 1 (/nix/store/00000000000000000000000000000004-d-1): no known licence violates policy rule unknown "deny"`,
		`f 1 (/nix/store/00000000000000000000000000000006-f-1): licence AGPL-3.0-only WITH x-exception violates policy rule deny[0] "AGPL-*"`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
	for name, content := range map[string]string{
		"bad pattern":     "deny: ['[']\n",
		"bad unknown":     "unknown: maybe\n",
		"unknown field":   "denied: [MIT]\n",
		"exception why":   "exceptions: [{package: e}]\n",
		"exception empty": "exceptions: [{reason: x}]\n",
	} {
		writeFile(t, file, content)
		if _, err := LoadPolicy(file); err == nil || !strings.Contains(err.Error(), file) {
			t.Errorf("%s: got %v, want an error naming the file", name, err)
		}
	}
}

// TestSchemaValidatorRejects makes sure the schema checks the SBOM tests
// rely on can fail.
func TestSchemaValidatorRejects(t *testing.T) {
	d := &Document{Roots: []string{"/nix/store/00000000000000000000000000000001-a-1"}, Scope: Runtime,
		Components: []*Component{{StorePath: "/nix/store/00000000000000000000000000000001-a-1", Name: "a", Version: "1"}}}
	var b bytes.Buffer
	if err := EncodeCycloneDX(&b, d); err != nil {
		t.Fatal(err)
	}
	if err := validate(t, b.Bytes()); err != nil {
		t.Fatalf("a minimal document fails: %v", err)
	}
	bad := strings.Replace(b.String(), `"type": "library"`, `"type": "no-such-type"`, 1)
	if validate(t, []byte(bad)) == nil {
		t.Error("a component of type no-such-type passed the CycloneDX schema")
	}
	b.Reset()
	if err := EncodeSPDX(&b, d); err != nil {
		t.Fatal(err)
	}
	bad = strings.Replace(b.String(), `"SPDXID": "SPDXRef-DOCUMENT"`, `"SPDXID": 42`, 1)
	if validate(t, []byte(bad)) == nil {
		t.Error("an SPDX document with a numeric SPDXID passed the schema")
	}
}

func TestSerialIsContentDerived(t *testing.T) {
	mk := func(version string) *Document {
		return &Document{Roots: []string{"/nix/store/00000000000000000000000000000001-a-1"}, Scope: Runtime,
			Components: []*Component{{StorePath: "/nix/store/00000000000000000000000000000001-a-1", Name: "a", Version: version}}}
	}
	a, b, c := mk("1"), mk("1"), mk("2")
	if a.Serial() != b.Serial() || a.Serial() == c.Serial() {
		t.Errorf("serials %s %s %s: want equal for equal content, different otherwise", a.Serial(), b.Serial(), c.Serial())
	}
}

func TestRandomSerial(t *testing.T) {
	mk := func() *Document {
		return &Document{Roots: []string{"/nix/store/00000000000000000000000000000001-a-1"}, Scope: Runtime,
			Components: []*Component{{StorePath: "/nix/store/00000000000000000000000000000001-a-1", Name: "a", Version: "1"}}}
	}
	content := mk().Serial()
	uuidV4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{content: true}
	for range 2 {
		d := mk()
		if err := d.RandomSerial(); err != nil {
			t.Fatal(err)
		}
		s := d.Serial()
		if !uuidV4.MatchString(s) || seen[s] {
			t.Errorf("random serial %s: want a version 4 UUID other than %v", s, seen)
		}
		seen[s] = true
	}
}

// A package gives its component a name and version only when it sets both:
// a pname without a version does not wipe the version the store path or
// the derivation gave.
func TestPackagesNeedPnameAndVersion(t *testing.T) {
	const a, b = "/nix/store/00000000000000000000000000000000-hello-2.12", "/nix/store/11111111111111111111111111111111-tool-1.0"
	d := &Document{Components: []*Component{{StorePath: a, Name: "hello", Version: "2.12"}, {StorePath: b, Name: "tool", Version: "1.0"}}}
	err := d.Enrich(Sources{Packages: []*nix.Package{
		{Pname: "hello-renamed", Outputs: map[string]string{"out": a}},
		{Pname: "tool-renamed", Version: "1.1", Outputs: map[string]string{"out": b}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{d.Components[0].Name + " " + d.Components[0].Version, d.Components[1].Name + " " + d.Components[1].Version}
	if want := []string{"hello 2.12", "tool-renamed 1.1"}; !cmp.Equal(got, want) {
		t.Errorf("components %q, want %q", got, want)
	}
}

// A component's deriver (an unsigned narinfo field) names it only if the
// derivation makes its path.
func TestDeriverMustMakeThePath(t *testing.T) {
	const a, b = "/nix/store/00000000000000000000000000000000-hello-2.12", "/nix/store/11111111111111111111111111111111-tool-1.0"
	drvs := map[string]*nix.Derivation{
		"/nix/store/22222222222222222222222222222222-hello-2.12.drv": {Outputs: map[string]string{"out": a}, Env: map[string]string{"pname": "hello", "version": "2.12.1"}},
		"/nix/store/33333333333333333333333333333333-other.drv":      {Outputs: map[string]string{"out": "/nix/store/44444444444444444444444444444444-other"}, Env: map[string]string{"pname": "other", "version": "9"}},
	}
	d := &Document{Components: []*Component{
		{StorePath: a, Name: "hello", Version: "2.12", Output: "out", Deriver: "/nix/store/22222222222222222222222222222222-hello-2.12.drv"},
		{StorePath: b, Name: "tool", Version: "1.0", Output: "out", Deriver: "/nix/store/33333333333333333333333333333333-other.drv"},
	}}
	err := d.Enrich(Sources{Derivations: func(p string) (*nix.Derivation, error) { return drvs[p], nil }})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{d.Components[0].Name + " " + d.Components[0].Version, d.Components[1].Name + " " + d.Components[1].Version}
	if want := []string{"hello 2.12.1", "tool 1.0"}; !cmp.Equal(got, want) {
		t.Errorf("components %q, want %q", got, want)
	}
}

// A CVE rated by CVSS v2 alone takes NVD's rating: v2 has no critical band.
func TestNVDv2Severity(t *testing.T) {
	feed := `{"format": "NVD_CVE", "version": "2.0", "vulnerabilities": [{"cve": {"id": "CVE-2010-0001",
		"metrics": {"cvssMetricV2": [{"type": "Primary", "cvssData": {"version": "2.0", "baseScore": 9.3}, "baseSeverity": "HIGH"}]}}}]}`
	advs, err := parseNVDFeed([]byte(feed))
	if err != nil {
		t.Fatal(err)
	}
	if a := advs[0]; a.Score != 9.3 || a.Severity != SeverityHigh {
		t.Errorf("score %v, severity %s; want 9.3, high", a.Score, a.Severity)
	}
}
