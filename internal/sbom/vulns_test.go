package sbom

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/owenrumney/go-sarif/v2/sarif"
)

func loadTestDB(t *testing.T) *DB {
	t.Helper()
	db, err := LoadDB(filepath.Join("testdata", "db"))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// summary is what a test compares of a finding.
type summary struct {
	ID, Package string
	Severity    Severity
	Suppressed  string
}

func summarize(fs []Finding) []summary {
	out := []summary{}
	for _, f := range fs {
		out = append(out, summary{f.ID, f.Package, f.Severity, f.Suppressed})
	}
	return out
}

var now = time.Date(2098, 6, 1, 12, 0, 0, 0, time.UTC)

func TestScanFixture(t *testing.T) {
	db := loadTestDB(t)
	r := Scan(runtimeDoc(t, "app"), db, ScanOptions{Now: now})
	want := []summary{
		{"CVE-2099-0002", "busybox", SeverityCritical, ""},
		{"CVE-2099-0001", "hello", SeverityHigh, ""},
		{"CVE-2099-0003", "hello", SeverityMedium, ""},
		{"CVE-2099-0005", "agpl-tool", SeverityUnknown, ""},
	}
	if diff := cmp.Diff(want, summarize(r.Findings)); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	if len(r.Suppressed) != 0 {
		t.Errorf("suppressed: %+v", r.Suppressed)
	}
	// The OSV record and the NVD entry are one finding.
	f := r.Findings[1]
	if f.Score != 8.2 || !cmp.Equal(f.Aliases, []string{"KIXTEST-2099-0001"}) || len(f.Sources) != 2 {
		t.Errorf("CVE-2099-0001 merged from OSV and NVD: %+v", f)
	}
	if got := len(r.AtLeast(SeverityHigh)); got != 2 {
		t.Errorf("AtLeast(high) = %d findings, want 2", got)
	}
}

func TestScanHonoursPatches(t *testing.T) {
	r := Scan(runtimeDoc(t, "app-patched"), loadTestDB(t), ScanOptions{Now: now})
	for _, f := range r.Findings {
		if f.ID == "CVE-2099-0001" {
			t.Errorf("CVE-2099-0001 reported although hello's patches name it: %+v", f)
		}
	}
	want := []summary{{"CVE-2099-0001", "hello", SeverityHigh, "patched by CVE-2099-0001.patch"}}
	if diff := cmp.Diff(want, summarize(r.Suppressed)); diff != "" {
		t.Errorf("suppressed (-want +got):\n%s", diff)
	}
	if len(r.Findings) != 3 {
		t.Errorf("want the 3 other findings, got %+v", summarize(r.Findings))
	}
}

func TestScanWhitelist(t *testing.T) {
	file := filepath.Join(t.TempDir(), "whitelist.yaml")
	writeFile(t, file, `
- id: CVE-2099-0002
  package: busybox
  reason: the affected applet is not in our image
  until: 2099-12-31
- id: KIXTEST-2099-0001   # an alias names the finding too
  reason: only the greeting file is read
- id: CVE-2099-0003
  package: busybox        # not hello: does not apply
  reason: wrong package
`)
	wl, err := LoadWhitelist(file)
	if err != nil {
		t.Fatal(err)
	}
	d := runtimeDoc(t, "app")
	db := loadTestDB(t)

	r := Scan(d, db, ScanOptions{Whitelist: wl, Now: now})
	want := []summary{
		{"CVE-2099-0002", "busybox", SeverityCritical, "whitelisted: the affected applet is not in our image (until 2099-12-31)"},
		{"CVE-2099-0001", "hello", SeverityHigh, "whitelisted: only the greeting file is read"},
	}
	if diff := cmp.Diff(want, summarize(r.Suppressed)); diff != "" {
		t.Errorf("suppressed before expiry (-want +got):\n%s", diff)
	}

	// The last day still counts; the day after, the entry has expired.
	lastDay := time.Date(2099, 12, 31, 23, 59, 0, 0, time.UTC)
	if r := Scan(d, db, ScanOptions{Whitelist: wl, Now: lastDay}); len(r.Suppressed) != 2 {
		t.Errorf("on the last day: suppressed %+v", summarize(r.Suppressed))
	}
	r = Scan(d, db, ScanOptions{Whitelist: wl, Now: lastDay.Add(time.Hour)})
	var busybox *Finding
	for i := range r.Findings {
		if r.Findings[i].ID == "CVE-2099-0002" {
			busybox = &r.Findings[i]
		}
	}
	if busybox == nil || busybox.Note != "whitelist entry for CVE-2099-0002 expired on 2099-12-31" {
		t.Errorf("after expiry CVE-2099-0002 should be reported with a note, got %+v", busybox)
	}
}

func TestLoadWhitelistErrors(t *testing.T) {
	for name, content := range map[string]string{
		"no reason":     "- id: CVE-2099-0002\n",
		"no id":         "- reason: because\n",
		"bad date":      "- id: CVE-2099-0002\n  reason: x\n  until: next year\n",
		"date and more": "- id: CVE-2099-0002\n  reason: x\n  until: 2099-12-31junk\n",
		"unknown key":   "- id: CVE-2099-0002\n  reason: x\n  expires: 2099-01-01\n",
		"not a list":    "id: CVE-2099-0002\n",
		"invalid yaml":  "- id: [\n",
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "wl.yaml")
			writeFile(t, file, content)
			_, err := LoadWhitelist(file)
			if err == nil || !strings.Contains(err.Error(), file) {
				t.Errorf("got %v, want an error naming %s", err, file)
			}
		})
	}
}

func TestSARIFIsValid(t *testing.T) {
	r := Scan(runtimeDoc(t, "app-patched"), loadTestDB(t), ScanOptions{Now: now})
	var b bytes.Buffer
	if err := WriteSARIF(&b, r, Tool{Name: "kix", Version: "test"}); err != nil {
		t.Fatal(err)
	}
	log, err := sarif.FromBytes(b.Bytes())
	if err != nil {
		t.Fatalf("go-sarif cannot read the log: %v", err)
	}
	if n := len(log.Runs[0].Results); n != 4 {
		t.Errorf("%d results, want 3 findings and 1 suppressed", n)
	}
	if err := validateSARIF(t, b.Bytes()); err != nil {
		t.Errorf("the SARIF schema rejects the log: %v", err)
	}
	// The validator does reject what the schema forbids.
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	doc["runs"].([]any)[0].(map[string]any)["results"].([]any)[0].(map[string]any)["level"] = "fatal"
	bad, _ := json.Marshal(doc)
	if validateSARIF(t, bad) == nil {
		t.Error("a result with level \"fatal\" passed the schema")
	}
}

// validateSARIF checks a SARIF log against the SARIF 2.1.0 schema in
// testdata (see testdata/SOURCES.md).
func validateSARIF(t *testing.T, log []byte) error {
	t.Helper()
	file := filepath.Join(t.TempDir(), "log.sarif")
	writeFile(t, file, string(log))
	out, err := exec.Command(jsonSchemaTool(t), filepath.Join("testdata", "sarif-schema-2.1.0.json"), file).CombinedOutput()
	if err != nil {
		return &toolError{err: err, out: string(out)}
	}
	return nil
}

func TestLoadDBFormats(t *testing.T) {
	dir := t.TempDir()
	// osv.dev's export: a zip of records.
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	for _, name := range []string{"KIXTEST-2099-0001.json", "KIXTEST-2099-0010.json"} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(readFile(t, filepath.Join("testdata", "db", "osv", name)))
	}
	zw.Close()
	writeFile(t, filepath.Join(dir, "all.zip"), zipped.String())
	// An NVD feed, gzip-compressed.
	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(readFile(t, filepath.Join("testdata", "db", "nvd", "nvdcve-2.0-2099.json")))
	gw.Close()
	writeFile(t, filepath.Join(dir, "nvd", "nvdcve-2.0-2099.json.gz"), gz.String())
	writeFile(t, filepath.Join(dir, "README.md"), "not a database file: ignored")

	db, err := LoadDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(db.Advisories) != 8 {
		t.Errorf("%d advisories, want 2 OSV records and 6 CVEs", len(db.Advisories))
	}
	// One file alone is a database too.
	if db, err := LoadDB(filepath.Join(dir, "all.zip")); err != nil || len(db.Advisories) != 2 {
		t.Errorf("the zip alone: %v, %v", db, err)
	}
}

func TestLoadDBErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, content, want string
	}{
		{"corrupt JSON", "bad.json", `{"id": "X", "affected": [`, "bad.json is not valid JSON"},
		{"neither kind", "other.json", `{"hello": "world"}`, "other.json is neither an OSV record nor an NVD CVE 2.0 feed"},
		{"corrupt gzip", "nvdcve-2.0-2099.json.gz", "not gzip", "nvdcve-2.0-2099.json.gz"},
		{"corrupt zip", "all.zip", "not a zip", "all.zip"},
		{"old NVD feed", "nvdcve-1.1-2020.json", `{"CVE_data_format": "MITRE", "format": "NVD_CVE", "version": "1.1", "vulnerabilities": []}`, "want NVD_CVE 2.0"},
		{"bad CPE", "nvd.json", `{"format": "NVD_CVE", "version": "2.0", "vulnerabilities": [{"cve": {"id": "CVE-2099-9", "configurations": [{"nodes": [{"cpeMatch": [{"vulnerable": true, "criteria": "hello"}]}]}]}}]}`, "CVE-2099-9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, tc.file), tc.content)
			_, err := LoadDB(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// osv.dev's export holds records converted from NVD whose entries name
	// a repository, not a package: they load, and match nothing.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "CVE-2099-7.json"), `{"id": "CVE-2099-7", "schema_version": "1.6.0",
		"affected": [{"ranges": [{"type": "GIT", "repo": "https://example.org/r", "events": [{"introduced": "a"}, {"fixed": "b"}]}]}]}`)
	if db, err := LoadDB(dir); err != nil || len(db.Advisories) != 1 || len(db.Advisories[0].osv) != 0 {
		t.Errorf("a record of GIT ranges alone: %v, %v", db, err)
	}
	if _, err := LoadDB(t.TempDir()); err == nil || !strings.Contains(err.Error(), "holds no OSV records") {
		t.Errorf("empty folder: got %v", err)
	}
	if _, err := LoadDB(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing path: got %v", err)
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
