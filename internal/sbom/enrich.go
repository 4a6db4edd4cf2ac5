package sbom

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/github/go-spdx/v2/spdxexp/spdxlicenses"
	"github.com/package-url/packageurl-go"

	"github.com/kix-project/kix/internal/nix"
)

// FromDerivations describes what building the root derivations used: every
// output of the roots, every output of an input derivation that some
// derivation in graph uses, and every input source (source trees, patches,
// the builder). An output depends on the inputs of its derivation. infos
// holds the PathInfo of the paths that are valid (built or fetched); the
// others get no NAR hash.
func FromDerivations(roots []string, graph map[string]*nix.Derivation, infos map[string]*nix.PathInfo) (*Document, error) {
	d := &Document{Scope: BuildTime}
	comps := map[string]*Component{}
	add := func(path, deriver string) (*Component, error) {
		if c, ok := comps[path]; ok {
			return c, nil
		}
		c, err := componentOf(path, deriver, infos[path])
		if err != nil {
			return nil, err
		}
		comps[path] = c
		return c, nil
	}
	for _, r := range roots {
		drv, ok := graph[r]
		if !ok {
			return nil, fmt.Errorf("root %s is not in the derivation graph", r)
		}
		for _, out := range drv.OutputNames() {
			d.Roots = append(d.Roots, drv.Outputs[out])
			if _, err := add(drv.Outputs[out], drv.Path); err != nil {
				return nil, err
			}
		}
	}
	deps := map[string][]input{} // output path -> what its derivation reads
	for _, drv := range graph {
		inputs, err := drvInputs(drv, graph)
		if err != nil {
			return nil, err
		}
		for _, in := range inputs {
			if _, err := add(in.path, in.deriver); err != nil {
				return nil, err
			}
		}
		for _, out := range drv.Outputs {
			deps[out] = inputs
		}
	}
	for path, c := range comps {
		for _, in := range deps[path] {
			c.DependsOn = append(c.DependsOn, in.path)
		}
	}
	for _, c := range comps {
		d.Components = append(d.Components, c)
	}
	d.Roots = sortedUnique(d.Roots)
	d.sort()
	return d, nil
}

type input struct{ path, deriver string }

// drvInputs lists the store paths a derivation's build reads: the outputs
// it uses of its input derivations, and its input sources.
func drvInputs(drv *nix.Derivation, graph map[string]*nix.Derivation) ([]input, error) {
	if drv == nil {
		return nil, nil
	}
	var ins []input
	for p, outs := range drv.InputDrvs {
		in, ok := graph[p]
		if !ok {
			return nil, fmt.Errorf("%s: input derivation %s is not in the graph", drv.Path, p)
		}
		for _, o := range outs {
			path, ok := in.Outputs[o]
			if !ok {
				return nil, fmt.Errorf("%s: input derivation %s has no output %q", drv.Path, p, o)
			}
			ins = append(ins, input{path, p})
		}
	}
	for _, src := range drv.InputSrcs {
		ins = append(ins, input{path: src})
	}
	return ins, nil
}

// DerivationReader reads a store derivation; nix.ReadDerivation reads them
// from the local store.
type DerivationReader func(drvPath string) (*nix.Derivation, error)

// Sources are what Enrich adds to a document from, besides its store paths.
type Sources struct {
	// Derivations reads the components' derivers; nil reads none.
	Derivations DerivationReader
	// Packages are the packages of the Nix expression the document was
	// made from (nix.EvalPackages), if any.
	Packages []*nix.Package
}

// Enrich adds to a document made by FromClosure or FromDerivations what
// the store paths alone do not say, always in the same order:
//
//  1. each component's deriver gives pname and version, when the
//     derivation sets both, and the patches;
//  2. the Nix expression's packages give pname and version (when the
//     package sets both), licences, homepage, description and CPE of the
//     components that are their outputs.
//
// So where a package's attributes and its derivation disagree on pname or
// version, the expression wins: it is what the user wrote.
func (d *Document) Enrich(src Sources) error {
	if src.Derivations != nil {
		if err := d.applyDerivations(src.Derivations); err != nil {
			return err
		}
	}
	d.applyPackages(src.Packages)
	return nil
}

// applyDerivations reads each component's deriver and takes from it pname
// and version when the derivation sets both, and its patches. Derivers
// that are not in the store (a path substituted from a binary cache
// without its .drv) are skipped.
func (d *Document) applyDerivations(read DerivationReader) error {
	drvs := map[string]*nix.Derivation{}
	for _, c := range d.Components {
		if c.Deriver == "" || c.Output == "" {
			continue
		}
		drv, seen := drvs[c.Deriver]
		if !seen {
			var err error
			drv, err = read(c.Deriver)
			if errors.Is(err, nix.ErrNotFound) {
				drvs[c.Deriver] = nil
				continue
			}
			if err != nil {
				return err
			}
			drvs[c.Deriver] = drv
		}
		// The deriver is what the path's narinfo says, unsigned: believed
		// only if the derivation makes the path (a floating CA derivation
		// does not say which path it makes).
		if drv == nil || drv.Outputs[c.Output] != "" && drv.Outputs[c.Output] != c.StorePath {
			continue
		}
		if p, v := drv.Env["pname"], drv.Env["version"]; p != "" && v != "" {
			c.Name, c.Version = p, v
		}
		c.Patches = drv.Patches()
	}
	return nil
}

// applyPackages takes names, versions, licences, homepages, descriptions
// and CPEs from the Nix expression's packages, for the components that are
// their outputs.
func (d *Document) applyPackages(pkgs []*nix.Package) {
	byOutput := map[string]*nix.Package{}
	for _, p := range pkgs {
		for _, out := range p.Outputs {
			byOutput[out] = p
		}
	}
	for _, c := range d.Components {
		p, ok := byOutput[c.StorePath]
		if !ok {
			continue
		}
		if p.Pname != "" && p.Version != "" {
			c.Name, c.Version = p.Pname, p.Version
		}
		c.Licenses = nil
		for _, l := range p.Licenses {
			c.Licenses = append(c.Licenses, NormalizeLicense(l))
		}
		c.Licenses = sortedUnique(c.Licenses)
		c.Homepage, c.Description, c.CPE = p.Homepage, p.Description, p.CPE
	}
}

var (
	licenseID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+-]*$`)
)

// NormalizeLicense returns an SPDX licence id as it is, and turns anything
// else into a LicenseRef- id (SPDX ids hold letters, digits, '.', '-' and
// a trailing '+'): "Foo License" becomes "LicenseRef-Foo-License". A
// nixpkgs licence that names an SPDX licence in another case
// (LicenseRef-nixpkgs-mit, from meta.license = "mit") is that licence, as
// the SPDX list spells it: MIT.
func NormalizeLicense(l string) string {
	// An SPDX licence with an exception ("Apache-2.0 WITH LLVM-exception",
	// as nixpkgs' asl20-llvm gives it) stays an expression: policies match
	// it by its licence too.
	if base, exception, ok := strings.Cut(l, " WITH "); ok && licenseID.MatchString(exception) &&
		!strings.HasPrefix(base, "LicenseRef-") && licenseID.MatchString(base) {
		return base + " WITH " + exception
	}
	if name, ok := strings.CutPrefix(l, "LicenseRef-nixpkgs-"); ok {
		if id, ok := spdxLicense(name); ok {
			return id
		}
	}
	if licenseID.MatchString(l) && l != "LicenseRef-" && !(strings.HasPrefix(l, "LicenseRef-") && strings.Contains(l, "+")) {
		// (A LicenseRef's idstring has no '+': LicenseRef-nixpkgs-foo+bar
		// is made good below.)
		return l
	}
	ref := strings.Trim(notIDChar.ReplaceAllString(strings.TrimPrefix(l, "LicenseRef-"), "-"), "-")
	if ref == "" {
		ref = "unknown"
	}
	return "LicenseRef-" + ref
}

// spdxLicense looks name up, in any case and with an optional trailing
// '+', in the SPDX licence list (current and deprecated ids), and returns
// it as the list spells it.
func spdxLicense(name string) (string, bool) {
	base, plus := strings.CutSuffix(name, "+")
	ok, id := spdxlicenses.IsActiveLicense(base)
	if !ok {
		ok, id = spdxlicenses.IsDeprecatedLicense(base)
	}
	if !ok {
		return "", false
	}
	if plus {
		id += "+"
	}
	return id, true
}

// PURL returns the component's package URL, in the form syft uses for Nix:
// pkg:nix/<name>@<version>?output=<output>&outputhash=<store hash>. The
// output is left out for "out" (and when unknown).
func (c *Component) PURL() string {
	q := packageurl.Qualifiers{}
	if c.Output != "" && c.Output != "out" {
		q = append(q, packageurl.Qualifier{Key: "output", Value: c.Output})
	}
	q = append(q, packageurl.Qualifier{Key: "outputhash", Value: nix.HashPart(c.StorePath)})
	return packageurl.NewPackageURL("nix", "", c.Name, c.Version, q, "").ToString()
}

// cveID finds CVE identifiers, as in patch file names.
var cveID = regexp.MustCompile(`(?i)CVE-\d{4}-\d{4,}`)

// patchCVEs are the CVE ids a patch's file name says it fixes, upper case.
func patchCVEs(patch string) []string {
	ids := cveID.FindAllString(patchName(patch), -1)
	for i := range ids {
		ids[i] = strings.ToUpper(ids[i])
	}
	return ids
}

// PatchedCVEs returns the CVE ids the component's patches are named after
// (upper case, sorted): "…-CVE-2099-0001.patch" fixes CVE-2099-0001, as
// vulnix and sbomnix read them.
func (c *Component) PatchedCVEs() []string {
	var ids []string
	for _, p := range c.Patches {
		ids = append(ids, patchCVEs(p)...)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// patchName is a patch's file name, without the store hash.
func patchName(p string) string {
	if sp, err := nix.ParseStorePath(p); err == nil {
		return nix.NamePart(sp)
	}
	return path.Base(p)
}
