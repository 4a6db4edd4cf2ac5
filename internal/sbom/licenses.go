package sbom

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Policy decides which licences a closure may hold. In YAML (or JSON):
//
//	deny:                    # licences no component may have
//	  - AGPL-*               # patterns as in path.Match: * ? [a-z]
//	  - LicenseRef-nixpkgs-unfree
//	allow:                   # if given, every licence must match one
//	  - MIT
//	  - Apache-2.0
//	  - GPL-*
//	unknown: deny            # components without a licence: allow (default) or deny
//	exceptions:              # components exempt from the rules
//	  - package: agpl-tool   # by name (a pattern too)
//	    reason: used only by the build, never distributed
//
// Licence ids compare without regard to case. A component whose meta lists
// several licences must pass the rules with each of them (a Nix licence
// list means they all apply).
type Policy struct {
	Deny       []string          `json:"deny,omitempty"`
	Allow      []string          `json:"allow,omitempty"`
	Unknown    string            `json:"unknown,omitempty"`
	Exceptions []PolicyException `json:"exceptions,omitempty"`
}

// PolicyException exempts packages from a policy.
type PolicyException struct {
	Package string `json:"package"`
	Reason  string `json:"reason"`
}

// Violation is a component a policy rejects.
type Violation struct {
	StorePath string `json:"storePath"`
	Package   string `json:"package"`
	Version   string `json:"version,omitempty"`
	License   string `json:"license,omitempty"` // "" for a component without one
	Rule      string `json:"rule"`              // the rule at fault: deny[0] "AGPL-*"
}

func (v Violation) String() string {
	lic := "licence " + v.License
	if v.License == "" {
		lic = "no known licence"
	}
	return fmt.Sprintf("%s %s (%s): %s violates policy rule %s", v.Package, v.Version, v.StorePath, lic, v.Rule)
}

// LoadPolicy reads a policy file; unknown fields and malformed patterns
// are errors.
func LoadPolicy(file string) (*Policy, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("licence policy: %w", err)
	}
	var p Policy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, fmt.Errorf("licence policy %s: %w", file, err)
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("licence policy %s: %w", file, err)
	}
	return &p, nil
}

func (p *Policy) check() error {
	if p.Unknown != "" && p.Unknown != "allow" && p.Unknown != "deny" {
		return fmt.Errorf("unknown: %q (want allow or deny)", p.Unknown)
	}
	for field, patterns := range map[string][]string{"deny": p.Deny, "allow": p.Allow} {
		for i, pat := range patterns {
			if _, err := path.Match(pat, ""); err != nil {
				return fmt.Errorf("%s[%d] %q: %w", field, i, pat, err)
			}
		}
	}
	for i, e := range p.Exceptions {
		if _, err := path.Match(e.Package, ""); err != nil || e.Package == "" {
			return fmt.Errorf("exceptions[%d]: package %q is not a name or pattern", i, e.Package)
		}
		if strings.TrimSpace(e.Reason) == "" {
			return fmt.Errorf("exceptions[%d] (%s): no reason", i, e.Package)
		}
	}
	return nil
}

// Check returns every violation of the policy in the document, in
// component order.
func (p *Policy) Check(d *Document) []Violation {
	var out []Violation
	for _, c := range d.Components {
		if p.exempt(c) {
			continue
		}
		v := Violation{StorePath: c.StorePath, Package: c.Name, Version: c.Version}
		if len(c.Licenses) == 0 {
			if p.Unknown == "deny" {
				v.Rule = `unknown "deny"`
				out = append(out, v)
			}
			continue
		}
		for _, l := range c.Licenses {
			if rule := p.rejects(l); rule != "" {
				v.License, v.Rule = l, rule
				out = append(out, v)
			}
		}
	}
	return out
}

// rejects names the rule that rejects a licence, or returns "". A licence
// with an exception ("Apache-2.0 WITH LLVM-exception") is matched as it is
// and by its licence: deny [Apache-*] rejects it, allow [Apache-2.0] lets
// it through.
func (p *Policy) rejects(license string) string {
	base, _, _ := strings.Cut(license, " WITH ")
	matches := func(pat string) bool { return matchFold(pat, license) || matchFold(pat, base) }
	for i, pat := range p.Deny {
		if matches(pat) {
			return fmt.Sprintf("deny[%d] %q", i, pat)
		}
	}
	if len(p.Allow) == 0 || slices.ContainsFunc(p.Allow, matches) {
		return ""
	}
	return "allow (not listed)"
}

func (p *Policy) exempt(c *Component) bool {
	for _, e := range p.Exceptions {
		if matchFold(e.Package, c.Name) {
			return true
		}
	}
	return false
}

func matchFold(pattern, s string) bool {
	ok, _ := path.Match(strings.ToLower(pattern), strings.ToLower(s))
	return ok
}
