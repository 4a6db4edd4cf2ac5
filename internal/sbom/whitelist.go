package sbom

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Whitelist lists findings that are known and accepted, each with a reason
// and, optionally, a date after which it no longer applies. In YAML (or
// JSON):
//
//   - id: CVE-2099-0002        # the CVE or advisory id (or an alias)
//     package: busybox         # optional: only this package (its name)
//     version: 1.35.0          # optional: only this version
//     reason: the affected applet is not in our image
//     until: 2099-12-31        # optional: suppresses through this day (UTC)
type Whitelist struct {
	Entries []WhitelistEntry
	file    string
}

// WhitelistEntry is one accepted finding.
type WhitelistEntry struct {
	ID      string `json:"id"`
	Package string `json:"package,omitempty"`
	Version string `json:"version,omitempty"`
	Reason  string `json:"reason"`
	Until   string `json:"until,omitempty"` // YYYY-MM-DD

	until time.Time // the first moment the entry no longer applies
}

// LoadWhitelist reads a whitelist file. Unknown fields, entries without an
// id or a reason, and dates that are not YYYY-MM-DD are errors naming the
// entry.
func LoadWhitelist(file string) (*Whitelist, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("whitelist: %w", err)
	}
	var entries []WhitelistEntry
	if err := yaml.UnmarshalStrict(data, &entries); err != nil {
		return nil, fmt.Errorf("whitelist %s: %w (want a list of {id, package, version, reason, until})", file, err)
	}
	for i := range entries {
		e := &entries[i]
		where := fmt.Sprintf("whitelist %s: entry %d (%s)", file, i+1, e.ID)
		if e.ID == "" {
			return nil, fmt.Errorf("%s: no id", where)
		}
		if strings.TrimSpace(e.Reason) == "" {
			return nil, fmt.Errorf("%s: no reason; say why the finding is accepted", where)
		}
		if e.Until != "" {
			day, err := parseDay(e.Until)
			if err != nil {
				return nil, fmt.Errorf("%s: until %q is not a date (YYYY-MM-DD)", where, e.Until)
			}
			e.Until = day.Format(time.DateOnly)
			e.until = day.AddDate(0, 0, 1)
		}
	}
	return &Whitelist{Entries: entries, file: file}, nil
}

// parseDay reads a date, YYYY-MM-DD, or the timestamp YAML may hand a
// date over as (2025-12-31T00:00:00Z).
func parseDay(s string) (time.Time, error) {
	day, err := time.Parse(time.DateOnly, s)
	if err != nil {
		var ts time.Time
		if ts, err = time.Parse(time.RFC3339, s); err == nil {
			day, err = time.Parse(time.DateOnly, ts.Format(time.DateOnly))
		}
	}
	return day, err
}

// covers returns why an entry suppresses the finding, or, when the only
// matching entries have expired, a note saying so.
func (w *Whitelist) covers(f Finding, now time.Time) (suppressed, note string) {
	for _, e := range w.Entries {
		if !e.matches(f) {
			continue
		}
		if !e.until.IsZero() && !now.Before(e.until) {
			note = fmt.Sprintf("whitelist entry for %s expired on %s", e.ID, e.Until)
			continue
		}
		reason := "whitelisted: " + e.Reason
		if e.Until != "" {
			reason += " (until " + e.Until + ")"
		}
		return reason, ""
	}
	return "", note
}

// matches reports whether the entry names the finding: its id as
// reported, or an alias that is an advisory's own id (GHSA-..., an OSV
// id). Another CVE the finding also goes by is not enough: a record that
// aliases two CVEs is accepted by the one it is reported as.
func (e WhitelistEntry) matches(f Finding) bool {
	if e.Package != "" && !strings.EqualFold(e.Package, f.Package) {
		return false
	}
	if e.Version != "" && CompareVersions(e.Version, f.Version) != 0 {
		return false
	}
	if strings.EqualFold(e.ID, f.ID) {
		return true
	}
	return slices.ContainsFunc(f.Aliases, func(id string) bool {
		return strings.EqualFold(id, e.ID) && !strings.HasPrefix(strings.ToUpper(id), "CVE-")
	})
}
