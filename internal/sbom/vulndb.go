package sbom

import (
	"archive/zip"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Advisory is one vulnerability record of a database, from an OSV record
// or an NVD CVE entry.
type Advisory struct {
	ID       string   `json:"id"`
	Aliases  []string `json:"aliases,omitempty"`
	Summary  string   `json:"summary,omitempty"`
	Score    float64  `json:"score,omitempty"` // CVSS base score; 0 if none
	Severity Severity `json:"severity"`
	URL      string   `json:"url,omitempty"`
	Source   string   `json:"source"` // the file (and zip member) it came from

	osv []osvAffected // OSV: the packages and versions it affects
	cpe []cpeMatch    // NVD: the CPE criteria it affects
}

// DB is an offline vulnerability database.
type DB struct {
	Advisories []*Advisory
	byName     map[string][]*Advisory // OSV package name or CPE product, lower case
	anyName    []*Advisory            // CPE criteria whose product is a wildcard
}

// LoadDB reads a vulnerability database from a file or a folder (searched
// recursively). It understands
//
//   - OSV records (https://ossf.github.io/osv-schema/): one record per
//     .json file, or many in a .zip as osv.dev's exports hold them;
//   - NVD CVE JSON 2.0 feeds (nvdcve-2.0-*.json), also gzip-compressed
//     (.json.gz).
//
// In a folder, files with other extensions are ignored. A file that is not
// valid JSON, or is neither kind of document, is an error naming it; so is
// a database without any advisory.
func LoadDB(path string) (*DB, error) {
	db := &DB{byName: map[string][]*Advisory{}}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("vulnerability database: %w", err)
	}
	if !fi.IsDir() {
		err = db.loadFile(path)
	} else {
		err = filepath.WalkDir(path, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || !isDBFile(p) {
				return err
			}
			return db.loadFile(p)
		})
	}
	if err != nil {
		return nil, err
	}
	if len(db.Advisories) == 0 {
		return nil, fmt.Errorf("vulnerability database %s holds no OSV records or NVD CVE 2.0 feeds", path)
	}
	return db, nil
}

func isDBFile(name string) bool {
	for _, ext := range []string{".json", ".json.gz", ".zip"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

func (db *DB) loadFile(name string) error {
	if strings.HasSuffix(name, ".zip") {
		return db.loadZip(name)
	}
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("vulnerability database: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(name, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		defer gz.Close()
		r = gz
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	return db.loadJSON(name, data)
}

func (db *DB) loadZip(name string) error {
	z, err := zip.OpenReader(name)
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	defer z.Close()
	for _, f := range z.File {
		if f.FileInfo().IsDir() || !strings.HasSuffix(f.Name, ".json") {
			continue
		}
		where := name + ":" + f.Name
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("reading %s: %w", where, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", where, err)
		}
		if err := db.loadJSON(where, data); err != nil {
			return err
		}
	}
	return nil
}

// loadJSON tells an NVD feed from an OSV record by their fields.
func (db *DB) loadJSON(where string, data []byte) error {
	var probe struct {
		Format          string          `json:"format"`
		Vulnerabilities json.RawMessage `json:"vulnerabilities"`
		ID              string          `json:"id"`
		Affected        json.RawMessage `json:"affected"`
		SchemaVersion   string          `json:"schema_version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return fmt.Errorf("%s is not valid JSON: %w", where, err)
	}
	var advs []*Advisory
	var err error
	switch {
	case probe.Format == "NVD_CVE" || probe.Vulnerabilities != nil:
		advs, err = parseNVDFeed(data)
	case probe.ID != "" && (probe.Affected != nil || probe.SchemaVersion != ""):
		var a *Advisory
		if a, err = parseOSV(data); a != nil {
			advs = []*Advisory{a}
		}
	default:
		return fmt.Errorf("%s is neither an OSV record nor an NVD CVE 2.0 feed", where)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	for _, a := range advs {
		a.Source = where
		db.add(a)
	}
	return nil
}

func (db *DB) add(a *Advisory) {
	db.Advisories = append(db.Advisories, a)
	names := map[string]bool{}
	for _, aff := range a.osv {
		names[strings.ToLower(aff.Package.Name)] = true
	}
	wildcard := false
	for _, m := range a.cpe {
		if m.cpe.product == "*" {
			wildcard = true
		}
		names[m.cpe.product] = true
	}
	if wildcard {
		db.anyName = append(db.anyName, a)
	}
	for n := range names {
		if n != "*" {
			db.byName[n] = append(db.byName[n], a)
		}
	}
}

// candidates returns the advisories that may concern a package name.
func (db *DB) candidates(names ...string) []*Advisory {
	var out []*Advisory
	for _, n := range names {
		out = append(out, db.byName[strings.ToLower(n)]...)
	}
	out = append(out, db.anyName...)
	slices.SortFunc(out, func(a, b *Advisory) int { return strings.Compare(a.Source+a.ID, b.Source+b.ID) })
	return slices.Compact(out)
}
