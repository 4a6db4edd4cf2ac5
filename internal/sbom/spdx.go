package sbom

import (
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/kix-project/kix/internal/nix"
)

// SPDXMediaType is the media type of an SPDX JSON document.
const SPDXMediaType = "application/spdx+json"

// spdxNamespacePrefix starts every document namespace kix writes; the
// serial number makes it unique.
const spdxNamespacePrefix = "https://kix.dev/spdx/"

// noAssertion is SPDX's "nothing is said about this".
const noAssertion = "NOASSERTION"

// EncodeSPDX writes d as an SPDX 2.3 JSON document.
func EncodeSPDX(w io.Writer, d *Document) error {
	return spdxjson.Write(SPDX(d), w, spdxjson.Indent("  "))
}

// SPDX converts d: one package per store path, DESCRIBES relationships from
// the document to the roots and DEPENDS_ON for references. SPDX needs a
// creation time: without a Timestamp it is the Unix epoch, so the document
// stays reproducible.
func SPDX(d *Document) *spdx.Document {
	created := time.Unix(0, 0)
	if !d.Timestamp.IsZero() {
		created = d.Timestamp
	}
	tool := d.tool().Name
	if v := d.tool().Version; v != "" {
		tool += "-" + v
	}
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      d.Name(),
		DocumentNamespace: spdxNamespacePrefix + spdxIDPart(d.Name()) + "-" + d.Serial(),
		DocumentComment:   "The " + string(d.Scope) + " closure of " + strings.Join(d.Roots, " "),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: tool}},
			Created:  created.UTC().Format(time.RFC3339),
		},
	}
	refs := map[string]bool{}
	for _, c := range d.Components {
		doc.Packages = append(doc.Packages, spdxPackage(c))
		for _, dep := range c.DependsOn {
			doc.Relationships = append(doc.Relationships, &spdx.Relationship{
				RefA:         common.MakeDocElementID("", string(SPDXID(c.StorePath))),
				RefB:         common.MakeDocElementID("", string(SPDXID(dep))),
				Relationship: common.TypeRelationshipDependsOn,
			})
		}
		for _, l := range c.Licenses {
			if strings.HasPrefix(l, "LicenseRef-") {
				refs[l] = true
			}
		}
	}
	describes := make([]*spdx.Relationship, len(d.Roots))
	for i, r := range d.Roots {
		describes[i] = &spdx.Relationship{
			RefA:         common.MakeDocElementID("", "DOCUMENT"),
			RefB:         common.MakeDocElementID("", string(SPDXID(r))),
			Relationship: common.TypeRelationshipDescribe,
		}
	}
	doc.Relationships = append(describes, doc.Relationships...)
	for _, l := range slices.Sorted(maps.Keys(refs)) {
		doc.OtherLicenses = append(doc.OtherLicenses, &spdx.OtherLicense{
			LicenseIdentifier: l,
			ExtractedText:     noAssertion,
			LicenseName:       strings.TrimPrefix(l, "LicenseRef-"),
			LicenseComment:    "A licence without an SPDX id, named by the package's Nix meta.license.",
		})
	}
	return doc
}

func spdxPackage(c *Component) *spdx.Package {
	p := &spdx.Package{
		PackageName:             c.Name,
		PackageSPDXIdentifier:   SPDXID(c.StorePath),
		PackageVersion:          c.Version,
		PackageFileName:         c.StorePath,
		PackageDownloadLocation: noAssertion,
		FilesAnalyzed:           false,
		PackageHomePage:         c.Homepage,
		PackageLicenseConcluded: noAssertion,
		PackageLicenseDeclared:  noAssertion,
		PackageCopyrightText:    noAssertion,
		PackageDescription:      c.Description,
		PackageExternalReferences: []*spdx.PackageExternalReference{{
			Category: common.CategoryPackageManager,
			RefType:  common.TypePackageManagerPURL,
			Locator:  c.PURL(),
		}},
	}
	if c.NarHash != "" {
		p.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: c.NarHash}}
		p.PackageComment = "The SHA256 checksum is the NAR hash of the store path."
	}
	if len(c.Licenses) > 0 {
		p.PackageLicenseDeclared = LicenseExpression(c.Licenses)
	}
	if c.CPE != "" {
		p.PackageExternalReferences = append(p.PackageExternalReferences, &spdx.PackageExternalReference{
			Category: common.CategorySecurity,
			RefType:  common.TypeSecurityCPE23Type,
			Locator:  c.CPE,
		})
	}
	if len(c.Patches) > 0 {
		p.PackageSourceInfo = "built with patches: " + strings.Join(c.Patches, " ")
	}
	return p
}

// notIDChar matches what SPDX element ids and LicenseRef- ids do not
// allow.
var notIDChar = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// SPDXID is the SPDX element id of a store path ("SPDXRef-" and the
// path's base name, with characters SPDX ids do not allow made '-').
func SPDXID(storePath string) common.ElementID {
	return common.ElementID(spdxIDPart(nix.BaseName(storePath)))
}

func spdxIDPart(s string) string { return notIDChar.ReplaceAllString(s, "-") }
