package sbom

import (
	"fmt"
	"strings"

	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"
)

// Severity is a qualitative rating of a vulnerability, from its CVSS base
// score where one is known.
type Severity string

// Severities, lowest first. Unknown is for advisories without a score or a
// rating; it ranks between none and low.
const (
	SeverityNone     Severity = "none"
	SeverityUnknown  Severity = "unknown"
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

var severityRank = map[Severity]int{
	SeverityNone: 0, SeverityUnknown: 1, SeverityLow: 2, SeverityMedium: 3, SeverityHigh: 4, SeverityCritical: 5,
}

// ParseSeverity reads a severity name, in any case ("HIGH" as NVD and
// GitHub write it, "moderate" as GitHub's medium).
func ParseSeverity(s string) (Severity, error) {
	v := Severity(strings.ToLower(strings.TrimSpace(s)))
	if v == "moderate" {
		v = SeverityMedium
	}
	if _, ok := severityRank[v]; !ok {
		return "", fmt.Errorf("unknown severity %q (want none, unknown, low, medium, high or critical)", s)
	}
	return v, nil
}

// AtLeast reports whether s ranks at or above min.
func (s Severity) AtLeast(min Severity) bool { return severityRank[s] >= severityRank[min] }

// SeverityOf rates a CVSS base score as CVSS v3 and v4 do: 0 none,
// 0.1-3.9 low, 4.0-6.9 medium, 7.0-8.9 high, 9.0-10.0 critical.
func SeverityOf(score float64) Severity {
	switch {
	case score >= 9:
		return SeverityCritical
	case score >= 7:
		return SeverityHigh
	case score >= 4:
		return SeverityMedium
	case score > 0:
		return SeverityLow
	}
	return SeverityNone
}

// CVSSBaseScore computes the base score of a CVSS v3.0, v3.1 or v4.0
// vector with its specification's formula (v4.0's is a lookup of the
// vector's macro vector, refined by its distance from the highest-severity
// vectors there; v4.0 scores the metrics the vector gives, which in an
// advisory are the base metrics): "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
// is 9.8, "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N" 9.3.
func CVSSBaseScore(vector string) (float64, error) {
	version, _, _ := strings.Cut(vector, "/")
	var score float64
	var err error
	switch version {
	case "CVSS:3.0":
		var v *gocvss30.CVSS30
		if v, err = gocvss30.ParseVector(vector); err == nil {
			score = v.BaseScore()
		}
	case "CVSS:3.1":
		var v *gocvss31.CVSS31
		if v, err = gocvss31.ParseVector(vector); err == nil {
			score = v.BaseScore()
		}
	case "CVSS:4.0":
		var v *gocvss40.CVSS40
		if v, err = gocvss40.ParseVector(vector); err == nil {
			score = v.Score()
		}
	default:
		return 0, fmt.Errorf("%q is not a CVSS v3 or v4 vector", vector)
	}
	if err != nil {
		return 0, fmt.Errorf("CVSS vector %q: %w", vector, err)
	}
	return score, nil
}
