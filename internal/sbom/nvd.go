package sbom

import (
	"encoding/json"
	"fmt"
	"strings"
)

// nvdFeed is the part of an NVD CVE JSON 2.0 feed kix reads.
type nvdFeed struct {
	Format          string `json:"format"`
	Version         string `json:"version"`
	Vulnerabilities []struct {
		CVE nvdCVE `json:"cve"`
	} `json:"vulnerabilities"`
}

type nvdCVE struct {
	ID           string `json:"id"`
	Descriptions []struct {
		Lang  string `json:"lang"`
		Value string `json:"value"`
	} `json:"descriptions"`
	Metrics        map[string][]nvdMetric `json:"metrics"`
	Configurations []struct {
		Nodes []struct {
			Operator string     `json:"operator"`
			Negate   bool       `json:"negate"`
			CPEMatch []cpeMatch `json:"cpeMatch"`
		} `json:"nodes"`
	} `json:"configurations"`
}

type nvdMetric struct {
	Type     string `json:"type"` // Primary, Secondary
	CVSSData struct {
		Version      string  `json:"version"`
		BaseScore    float64 `json:"baseScore"`
		BaseSeverity string  `json:"baseSeverity"`
	} `json:"cvssData"`
	BaseSeverity string `json:"baseSeverity"` // CVSS v2 puts it here
}

// cpeMatch is one criterion of an NVD configuration.
type cpeMatch struct {
	Vulnerable            bool   `json:"vulnerable"`
	Criteria              string `json:"criteria"`
	VersionStartIncluding string `json:"versionStartIncluding"`
	VersionStartExcluding string `json:"versionStartExcluding"`
	VersionEndIncluding   string `json:"versionEndIncluding"`
	VersionEndExcluding   string `json:"versionEndExcluding"`

	cpe cpeName
}

// nvdMetricOrder is which CVSS version rates a CVE: the newest present.
var nvdMetricOrder = []string{"cvssMetricV40", "cvssMetricV31", "cvssMetricV30", "cvssMetricV2"}

func parseNVDFeed(data []byte) ([]*Advisory, error) {
	var feed nvdFeed
	if err := json.Unmarshal(data, &feed); err != nil {
		return nil, fmt.Errorf("decoding NVD feed: %w", err)
	}
	if feed.Format != "" && feed.Format != "NVD_CVE" || feed.Version != "" && !strings.HasPrefix(feed.Version, "2.") {
		return nil, fmt.Errorf("NVD feed has format %q version %q; want NVD_CVE 2.0", feed.Format, feed.Version)
	}
	advs := make([]*Advisory, 0, len(feed.Vulnerabilities))
	for i, v := range feed.Vulnerabilities {
		a, err := nvdAdvisory(v.CVE)
		if err != nil {
			return nil, fmt.Errorf("vulnerabilities[%d] (%s): %w", i, v.CVE.ID, err)
		}
		advs = append(advs, a)
	}
	return advs, nil
}

func nvdAdvisory(c nvdCVE) (*Advisory, error) {
	if c.ID == "" {
		return nil, fmt.Errorf("no CVE id")
	}
	a := &Advisory{ID: c.ID, URL: "https://nvd.nist.gov/vuln/detail/" + c.ID, Severity: SeverityUnknown}
	for _, d := range c.Descriptions {
		if d.Lang == "en" {
			a.Summary = firstLine(d.Value)
			break
		}
	}
	for _, key := range nvdMetricOrder {
		if ms := c.Metrics[key]; len(ms) > 0 {
			m := primaryMetric(ms)
			a.Score = m.CVSSData.BaseScore
			a.Severity = SeverityOf(a.Score)
			// NVD's own rating where it gives one: CVSS v2 has no
			// critical band, so 9.3 is high there, not critical.
			for _, rating := range []string{m.CVSSData.BaseSeverity, m.BaseSeverity} {
				if sev, err := ParseSeverity(rating); err == nil && rating != "" {
					a.Severity = sev
					break
				}
			}
			break
		}
	}
	for _, conf := range c.Configurations {
		for _, node := range conf.Nodes {
			if node.Negate {
				continue
			}
			for _, m := range node.CPEMatch {
				if !m.Vulnerable {
					continue
				}
				name, err := parseCPE(m.Criteria)
				if err != nil {
					return nil, err
				}
				m.cpe = name
				a.cpe = append(a.cpe, m)
			}
		}
	}
	return a, nil
}

func primaryMetric(ms []nvdMetric) nvdMetric {
	for _, m := range ms {
		if m.Type == "Primary" {
			return m
		}
	}
	return ms[0]
}

// cpeName is the part of a CPE 2.3 formatted string that matching uses.
type cpeName struct {
	part, vendor, product, version string
}

// parseCPE reads "cpe:2.3:part:vendor:product:version:..." (escaped
// colons, "\:", stay in their field). Fields are lower-cased.
func parseCPE(s string) (cpeName, error) {
	var fields []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			cur.WriteByte(s[i+1])
			i++
		case s[i] == ':':
			fields = append(fields, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	fields = append(fields, cur.String())
	if len(fields) < 6 || fields[0] != "cpe" || fields[1] != "2.3" {
		return cpeName{}, fmt.Errorf("%q is not a CPE 2.3 name", s)
	}
	lower := strings.ToLower
	return cpeName{part: lower(fields[2]), vendor: lower(fields[3]), product: lower(fields[4]), version: lower(fields[5])}, nil
}

// ComponentCPE returns the CPE a component is matched against: its
// meta CPE, or, as vulnix does, one made from its name and version with
// any vendor: cpe:2.3:a:*:<name>:<version>:*:*:*:*:*:*:*.
func ComponentCPE(c *Component) string {
	if c.CPE != "" {
		return c.CPE
	}
	esc := strings.NewReplacer(":", `\:`)
	return "cpe:2.3:a:*:" + esc.Replace(strings.ToLower(c.Name)) + ":" + esc.Replace(c.Version) + ":*:*:*:*:*:*:*"
}

// matchCPE reports whether a vulnerable NVD criterion matches a CPE: same
// part, vendor and product (a "*" on either side matches anything), and a
// version that equals the criterion's or, for "*" and "-", lies inside its
// versionStart/End bounds, compared as Nix compares versions.
func (m cpeMatch) matches(c cpeName) bool {
	eq := func(a, b string) bool { return a == "*" || b == "*" || a == b }
	if !eq(m.cpe.part, c.part) || !eq(m.cpe.vendor, c.vendor) || !eq(m.cpe.product, c.product) {
		return false
	}
	v := c.version
	if v == "" || v == "*" || v == "-" {
		return false
	}
	if m.cpe.version != "*" && m.cpe.version != "-" && CompareVersions(m.cpe.version, v) != 0 {
		return false
	}
	bound := func(limit string, ok func(int) bool) bool { return limit == "" || ok(CompareVersions(v, limit)) }
	return bound(m.VersionStartIncluding, func(c int) bool { return c >= 0 }) &&
		bound(m.VersionStartExcluding, func(c int) bool { return c > 0 }) &&
		bound(m.VersionEndIncluding, func(c int) bool { return c <= 0 }) &&
		bound(m.VersionEndExcluding, func(c int) bool { return c < 0 })
}

// matchNVD reports whether the CVE affects a component with this CPE.
func (a *Advisory) matchNVD(c cpeName) bool {
	for _, m := range a.cpe {
		if m.matches(c) {
			return true
		}
	}
	return false
}
