package sbom

import (
	"fmt"
	"math"
	"strings"
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

// cvss3Weights are the CVSS v3.x base metric values.
var cvss3Weights = map[string]map[string]float64{
	"AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
	"AC": {"L": 0.77, "H": 0.44},
	"PR": {"N": 0.85, "L": 0.62, "H": 0.27},
	"UI": {"N": 0.85, "R": 0.62},
	"C":  {"H": 0.56, "L": 0.22, "N": 0},
	"I":  {"H": 0.56, "L": 0.22, "N": 0},
	"A":  {"H": 0.56, "L": 0.22, "N": 0},
}

// CVSS3BaseScore computes the base score of a CVSS v3.0 or v3.1 vector
// ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" is 9.8) with the
// specification's formula.
func CVSS3BaseScore(vector string) (float64, error) {
	parts := strings.Split(vector, "/")
	if len(parts) == 0 || (parts[0] != "CVSS:3.0" && parts[0] != "CVSS:3.1") {
		return 0, fmt.Errorf("%q is not a CVSS v3 vector", vector)
	}
	m := map[string]string{}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, ":")
		if !ok {
			return 0, fmt.Errorf("CVSS vector %q: malformed metric %q", vector, p)
		}
		m[k] = v
	}
	w := map[string]float64{}
	for metric, values := range cvss3Weights {
		v, ok := values[m[metric]]
		if !ok {
			return 0, fmt.Errorf("CVSS vector %q: missing or unknown %s", vector, metric)
		}
		w[metric] = v
	}
	changed := m["S"] == "C"
	if !changed && m["S"] != "U" {
		return 0, fmt.Errorf("CVSS vector %q: missing or unknown S", vector)
	}
	if changed && m["PR"] == "L" {
		w["PR"] = 0.68
	} else if changed && m["PR"] == "H" {
		w["PR"] = 0.5
	}
	iss := 1 - (1-w["C"])*(1-w["I"])*(1-w["A"])
	impact := 6.42 * iss
	if changed {
		impact = 7.52*(iss-0.029) - 3.25*math.Pow(iss-0.02, 15)
	}
	if impact <= 0 {
		return 0, nil
	}
	exploitability := 8.22 * w["AV"] * w["AC"] * w["PR"] * w["UI"]
	if changed {
		return roundUp(math.Min(1.08*(impact+exploitability), 10)), nil
	}
	return roundUp(math.Min(impact+exploitability, 10)), nil
}

// roundUp is CVSS v3.1's Roundup: the smallest one-decimal number at or
// above x, computed so that floating-point noise does not round 4.0 to 4.1.
func roundUp(x float64) float64 {
	i := math.Round(x * 100000)
	if math.Mod(i, 10000) == 0 {
		return i / 100000
	}
	return (math.Floor(i/10000) + 1) / 10
}
