package sbom

import (
	"path/filepath"
	"strconv"
	"testing"
)

// scanRecords loads the given database files and scans one component.
func scanRecords(t *testing.T, c *Component, wl *Whitelist, files map[string]string) *Report {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
	}
	db, err := LoadDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	return Scan(&Document{Components: []*Component{c}}, db, ScanOptions{Whitelist: wl})
}

// An advisory under two CVE ids is fixed, or accepted, only for both.
func TestTwoCVEsOneRecord(t *testing.T) {
	record := map[string]string{"GHSA-1.json": `{"id": "GHSA-1", "aliases": ["CVE-2099-0001", "CVE-2099-0002"],
		"affected": [{"package": {"name": "busybox"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}]}]}`}
	busybox := func(patches ...string) *Component {
		return &Component{Name: "busybox", Version: "1.35.0", StorePath: "/nix/store/x-busybox-1.35.0", Patches: patches}
	}

	r := scanRecords(t, busybox("/nix/store/0p9s2v3rl6i7m0ldg5cmzvjdkacz9ns4-CVE-2099-0002.patch"), nil, record)
	if len(r.Findings) != 1 || r.Findings[0].ID != "CVE-2099-0001" {
		t.Errorf("a patch for the other CVE hid the finding: findings %+v, suppressed %+v", r.Findings, r.Suppressed)
	}
	r = scanRecords(t, busybox("/nix/store/0p9s2v3rl6i7m0ldg5cmzvjdkacz9ns4-CVE-2099-0002.patch", "/nix/store/1ag2zq0bwsk2y0y7vb1i2x0ffpnc0wxs-CVE-2099-0001.patch"), nil, record)
	if len(r.Findings) != 0 || len(r.Suppressed) != 1 || r.Suppressed[0].Suppressed != "patched by CVE-2099-0001.patch, CVE-2099-0002.patch" {
		t.Errorf("patches for both CVEs: findings %+v, suppressed %+v", r.Findings, r.Suppressed)
	}

	for id, hides := range map[string]bool{"CVE-2099-0002": false, "CVE-2099-0001": true, "GHSA-1": true} {
		wl := &Whitelist{Entries: []WhitelistEntry{{ID: id, Reason: "accepted"}}}
		r := scanRecords(t, busybox(), wl, record)
		if got := len(r.Suppressed) == 1 && len(r.Findings) == 0; got != hides {
			t.Errorf("a whitelist entry for %s hides the finding = %v, want %v", id, got, hides)
		}
	}
}

// Records of one vulnerability merge into the highest severity: an OSV
// record rated critical by its database beats NVD's 7.5.
func TestMergeKeepsTheHighestSeverity(t *testing.T) {
	r := scanRecords(t, &Component{Name: "hello", Version: "2.12.1"}, nil, map[string]string{
		"GHSA-2.json": `{"id": "GHSA-2", "aliases": ["CVE-2099-0003"], "database_specific": {"severity": "CRITICAL"},
			"affected": [{"package": {"name": "hello"}, "versions": ["2.12.1"]}]}`,
		"nvdcve-2.0-2099.json": nvdFeedOf("CVE-2099-0003", "cpe:2.3:a:*:hello:2.12.1:*:*:*:*:*:*:*", 7.5, "HIGH"),
	})
	if len(r.Findings) != 1 || r.Findings[0].Severity != SeverityCritical {
		t.Errorf("findings %+v, want one, critical", r.Findings)
	}
}

// A meta CPE that is not CPE 2.3 does not turn NVD matching off.
func TestMalformedMetaCPE(t *testing.T) {
	r := scanRecords(t, &Component{Name: "hello", Version: "2.12.1", CPE: "cpe:/a:gnu:hello:2.12.1"}, nil, map[string]string{
		"nvdcve-2.0-2099.json": nvdFeedOf("CVE-2099-0004", "cpe:2.3:a:gnu:hello:2.12.1:*:*:*:*:*:*:*", 5.3, "MEDIUM"),
	})
	if len(r.Findings) != 1 || r.Findings[0].ID != "CVE-2099-0004" {
		t.Errorf("findings %+v, want CVE-2099-0004", r.Findings)
	}
}

// nvdFeedOf is an NVD CVE 2.0 feed of one CVE, vulnerable at one CPE.
func nvdFeedOf(id, criteria string, score float64, severity string) string {
	return `{"format": "NVD_CVE", "version": "2.0", "vulnerabilities": [{"cve": {"id": "` + id + `",
		"descriptions": [{"lang": "en", "value": "made up"}],
		"metrics": {"cvssMetricV31": [{"type": "Primary", "cvssData": {"baseScore": ` + strconv.FormatFloat(score, 'f', -1, 64) + `, "baseSeverity": "` + severity + `"}}]},
		"configurations": [{"nodes": [{"cpeMatch": [{"vulnerable": true, "criteria": "` + criteria + `"}]}]}]}}]}`
}
