package sbom

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Finding is an advisory that concerns a component.
type Finding struct {
	ID        string   `json:"id"` // the CVE id when the advisory has one
	Aliases   []string `json:"aliases,omitempty"`
	StorePath string   `json:"storePath"`
	Package   string   `json:"package"`
	Version   string   `json:"version"`
	Severity  Severity `json:"severity"`
	Score     float64  `json:"score,omitempty"`
	Summary   string   `json:"summary,omitempty"`
	URL       string   `json:"url,omitempty"`
	Sources   []string `json:"sources"` // database files that name it
	// Suppressed says why the finding is not reported: a patch of the
	// derivation names it, or a whitelist entry covers it.
	Suppressed string `json:"suppressed,omitempty"`
	// Note says what else the reader should know: a whitelist entry that
	// expired.
	Note string `json:"note,omitempty"`
}

// Report is the result of Scan.
type Report struct {
	Findings   []Finding `json:"findings"`   // reported, most severe first
	Suppressed []Finding `json:"suppressed"` // patched or whitelisted
}

// ScanOptions adjust Scan.
type ScanOptions struct {
	Whitelist *Whitelist
	// Now decides which whitelist entries have expired; time.Now if zero.
	Now time.Time
}

// Scan matches every component against the database: OSV records by
// package name and version, NVD CVEs by CPE (ComponentCPE). One advisory
// known under several ids (an OSV record aliasing a CVE the NVD feed also
// holds) is one finding, under its CVE id. A finding whose CVE a patch of
// the component's derivation is named after is suppressed, as vulnix and
// sbomnix do; so is one a whitelist entry covers until it expires.
func Scan(d *Document, db *DB, opts ScanOptions) *Report {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	r := &Report{Findings: []Finding{}, Suppressed: []Finding{}}
	for _, c := range d.Components {
		for _, f := range scanComponent(c, db) {
			if reason := patchedBy(c, f); reason != "" {
				f.Suppressed = reason
			} else if opts.Whitelist != nil {
				f.Suppressed, f.Note = opts.Whitelist.covers(f, opts.Now)
			}
			if f.Suppressed != "" {
				r.Suppressed = append(r.Suppressed, f)
			} else {
				r.Findings = append(r.Findings, f)
			}
		}
	}
	sortFindings(r.Findings)
	sortFindings(r.Suppressed)
	return r
}

func scanComponent(c *Component, db *DB) []Finding {
	cpe, cpeErr := parseCPE(ComponentCPE(c))
	if cpeErr != nil && c.CPE != "" {
		// A meta CPE that is not CPE 2.3 (cpe:/a:gnu:hello:2.12.1, the
		// 2.2 form) is matched as a component without one is.
		cpe, cpeErr = parseCPE(ComponentCPE(&Component{Name: c.Name, Version: c.Version}))
	}
	if cpeErr == nil && cpe.version == "*" {
		cpe.version = strings.ToLower(c.Version)
	}
	names := []string{c.Name}
	if cpeErr == nil {
		names = append(names, cpe.product)
	}
	byID := map[string]*Finding{}
	for _, a := range db.candidates(names...) {
		if !a.matchOSV(c.Name, c.Version) && (cpeErr != nil || !a.matchNVD(cpe)) {
			continue
		}
		id := canonicalID(a)
		f, ok := byID[id]
		if !ok {
			f = &Finding{ID: id, StorePath: c.StorePath, Package: c.Name, Version: c.Version, Severity: SeverityUnknown}
			byID[id] = f
		}
		f.merge(a)
	}
	out := make([]Finding, 0, len(byID))
	for _, f := range byID {
		out = append(out, *f)
	}
	return out
}

// canonicalID is the advisory's CVE id if it has one, else its own id.
func canonicalID(a *Advisory) string {
	for _, id := range append([]string{a.ID}, a.Aliases...) {
		if strings.HasPrefix(strings.ToUpper(id), "CVE-") {
			return strings.ToUpper(id)
		}
	}
	return a.ID
}

// merge adds what another record of the same vulnerability says: its ids,
// its source, and its rating if that ranks higher (a database's "critical"
// without a score beats another's 7.5) or, ranking the same, has the
// higher score.
func (f *Finding) merge(a *Advisory) {
	for _, id := range append([]string{a.ID}, a.Aliases...) {
		if !strings.EqualFold(id, f.ID) && !slices.Contains(f.Aliases, id) {
			f.Aliases = append(f.Aliases, id)
		}
	}
	slices.Sort(f.Aliases)
	f.Sources = append(f.Sources, a.Source)
	slices.Sort(f.Sources)
	f.Sources = slices.Compact(f.Sources)
	if r, have := severityRank[a.Severity], severityRank[f.Severity]; r > have || r == have && a.Score > f.Score {
		f.Score, f.Severity = a.Score, a.Severity
	}
	if f.Summary == "" || strings.HasPrefix(a.URL, "https://nvd.nist.gov/") {
		f.Summary, f.URL = a.Summary, a.URL
	}
}

// patchedBy names the patches that fix the finding, if any: one named
// after each CVE id the finding goes by. A record that aliases two CVEs is
// not fixed by a patch for one of them.
func patchedBy(c *Component, f Finding) string {
	fixes := map[string]string{} // CVE id -> the patch named after it
	for _, p := range c.Patches {
		for _, id := range patchCVEs(p) {
			if _, ok := fixes[id]; !ok {
				fixes[id] = patchName(p)
			}
		}
	}
	var patches []string
	for _, id := range cveIDs(f) {
		p, ok := fixes[id]
		if !ok {
			return ""
		}
		patches = append(patches, p)
	}
	if len(patches) == 0 {
		return ""
	}
	return "patched by " + strings.Join(sortedUnique(patches), ", ")
}

// cveIDs are the CVE ids among the finding's id and aliases, upper case.
func cveIDs(f Finding) []string {
	var ids []string
	for _, id := range append([]string{f.ID}, f.Aliases...) {
		if strings.HasPrefix(strings.ToUpper(id), "CVE-") {
			ids = append(ids, strings.ToUpper(id))
		}
	}
	return sortedUnique(ids)
}

func sortFindings(fs []Finding) {
	slices.SortFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(severityRank[b.Severity], severityRank[a.Severity]),
			cmp.Compare(b.Score, a.Score),
			strings.Compare(a.ID, b.ID),
			strings.Compare(a.StorePath, b.StorePath),
		)
	})
}

// AtLeast returns the reported findings whose severity ranks at or above
// min.
func (r *Report) AtLeast(min Severity) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Severity.AtLeast(min) {
			out = append(out, f)
		}
	}
	return out
}
