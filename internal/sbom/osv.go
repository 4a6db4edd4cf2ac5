package sbom

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/semver"
)

// osvRecord is the part of an OSV record kix reads.
type osvRecord struct {
	ID        string        `json:"id"`
	Withdrawn string        `json:"withdrawn"` // set when the advisory was taken back
	Aliases   []string      `json:"aliases"`
	Summary   string        `json:"summary"`
	Details   string        `json:"details"`
	Severity  []osvSeverity `json:"severity"`
	Affected  []osvAffected `json:"affected"`
	// GitHub's and others' databases rate a record here.
	DatabaseSpecific struct {
		Severity string `json:"severity"`
	} `json:"database_specific"`
	References []struct {
		Type string `json:"type"`
		URL  string `json:"url"`
	} `json:"references"`
}

type osvSeverity struct {
	Type  string `json:"type"`  // CVSS_V3, CVSS_V4, ...
	Score string `json:"score"` // a vector, or a number
}

type osvAffected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
	} `json:"package"`
	Ranges   []osvRange `json:"ranges"`
	Versions []string   `json:"versions"`
}

type osvRange struct {
	Type   string     `json:"type"` // SEMVER, ECOSYSTEM, GIT
	Events []osvEvent `json:"events"`
}

type osvEvent struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// parseOSV reads an OSV record; nil, nil for one that was withdrawn.
func parseOSV(data []byte) (*Advisory, error) {
	var r osvRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decoding OSV record: %w", err)
	}
	if r.Withdrawn != "" {
		return nil, nil
	}
	// An entry that names no package matches no component: osv.dev's
	// records converted from NVD give a repository's GIT ranges alone.
	affected := slices.DeleteFunc(r.Affected, func(aff osvAffected) bool { return aff.Package.Name == "" })
	a := &Advisory{ID: r.ID, Aliases: r.Aliases, Summary: r.Summary, osv: affected}
	if a.Summary == "" {
		a.Summary = firstLine(r.Details)
	}
	a.Score, a.Severity = osvSeverityOf(r)
	for _, ref := range r.References {
		if a.URL == "" || ref.Type == "ADVISORY" {
			a.URL = ref.URL
		}
		if ref.Type == "ADVISORY" {
			break
		}
	}
	return a, nil
}

// osvSeverityOf takes the highest CVSS v3 or v4 score the record gives
// (computed from the vector, or given as a number), else its database's
// rating.
func osvSeverityOf(r osvRecord) (float64, Severity) {
	best := -1.0
	for _, s := range r.Severity {
		score, err := strconv.ParseFloat(s.Score, 64)
		if err != nil {
			score, err = CVSSBaseScore(s.Score)
		}
		if err == nil && score > best {
			best = score
		}
	}
	if best >= 0 {
		return best, SeverityOf(best)
	}
	if sev, err := ParseSeverity(r.DatabaseSpecific.Severity); err == nil {
		return 0, sev
	}
	return 0, SeverityUnknown
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// matchOSV reports whether the record affects a package name at a version:
// the name matches (in any ecosystem but a Linux distribution's, whose
// versions are the distribution's builds, not upstream's; Nix names are
// what nixpkgs calls the package) and the version is listed or inside a
// SEMVER or ECOSYSTEM range, compared as Nix compares versions. GIT ranges
// are ignored.
func (a *Advisory) matchOSV(name, version string) bool {
	if version == "" {
		return false
	}
	for _, aff := range a.osv {
		if !strings.EqualFold(aff.Package.Name, name) || distroEcosystem(aff.Package.Ecosystem) {
			continue
		}
		if slices.ContainsFunc(aff.Versions, func(v string) bool { return CompareVersions(v, version) == 0 }) {
			return true
		}
		for _, r := range aff.Ranges {
			if r.Type != "GIT" && r.affects(version) {
				return true
			}
		}
	}
	return false
}

// affects walks the range's events in version order: an introduced event
// at or below the version opens it, a fixed or limit event at or below it
// (or a last_affected event below it) closes it.
func (r osvRange) affects(version string) bool {
	compare := r.compare()
	events := slices.Clone(r.Events)
	slices.SortStableFunc(events, func(a, b osvEvent) int { return compare(a.version(), b.version()) })
	affected := false
	for _, e := range events {
		c := compare(version, e.version())
		switch {
		case e.Introduced != "" && (e.Introduced == "0" || c >= 0):
			affected = true
		case e.Fixed != "" && c >= 0, e.Limit != "" && c >= 0, e.LastAffected != "" && c > 0:
			affected = false
		}
	}
	return affected
}

// compare is how the range's versions order: a SEMVER range's as semantic
// versions where both are (2.0.0-rc1 comes before 2.0.0, which Nix puts the
// other way round), everything else as Nix compares versions.
func (r osvRange) compare() func(a, b string) int {
	if r.Type != "SEMVER" {
		return CompareVersions
	}
	return func(a, b string) int {
		va, vb := "v"+strings.TrimPrefix(a, "v"), "v"+strings.TrimPrefix(b, "v")
		if a != "" && b != "" && semver.IsValid(va) && semver.IsValid(vb) {
			return semver.Compare(va, vb)
		}
		return CompareVersions(a, b)
	}
}

func (e osvEvent) version() string {
	switch {
	case e.Introduced != "":
		if e.Introduced == "0" {
			return ""
		}
		return e.Introduced
	case e.Fixed != "":
		return e.Fixed
	case e.LastAffected != "":
		return e.LastAffected
	}
	return e.Limit
}

// distroEcosystems are OSV ecosystems of Linux distributions: their
// records version a distribution's own builds (1.35.0-r0, 1.35.0-2ubuntu1).
var distroEcosystems = []string{
	"AlmaLinux", "Alpine", "Chainguard", "Debian", "Mageia", "openEuler", "openSUSE",
	"Photon OS", "Red Hat", "Rocky Linux", "SUSE", "Ubuntu", "Wolfi",
}

// distroEcosystem reports whether an ecosystem ("Alpine:v3.19",
// "Debian:12") is a distribution's.
func distroEcosystem(ecosystem string) bool {
	base, _, _ := strings.Cut(ecosystem, ":")
	return slices.Contains(distroEcosystems, base)
}
