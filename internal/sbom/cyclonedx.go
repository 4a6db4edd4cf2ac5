package sbom

import (
	"io"
	"strconv"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// CycloneDXMediaType is the media type of a CycloneDX JSON document, and
// the artifactType of the SBOM referrers kix registry serves.
const CycloneDXMediaType = "application/vnd.cyclonedx+json"

// SubjectRef is the bom-ref of the CycloneDX metadata component, which
// stands for the whole document's subject and depends on its roots.
const SubjectRef = "kix:subject"

// Property names kix sets on CycloneDX components.
const (
	PropStorePath = "nix:store_path"
	PropOutput    = "nix:output"
	PropDeriver   = "nix:deriver"
	PropNarSize   = "nix:nar_size"
	PropScope     = "kix:scope"
	PropRoot      = "kix:root"
)

// EncodeCycloneDX writes d as a CycloneDX 1.6 JSON document.
func EncodeCycloneDX(w io.Writer, d *Document) error {
	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	return enc.EncodeVersion(CycloneDX(d), cdx.SpecVersion1_6)
}

// CycloneDX converts d: one component per store path (bom-ref = the store
// path), the reference graph as dependencies, and a metadata component
// for the subject that depends on the roots.
func CycloneDX(d *Document) *cdx.BOM {
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + d.Serial()
	bom.Metadata = &cdx.Metadata{
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: d.tool().Name, Version: d.tool().Version,
		}}},
		Component:  cdxSubject(d),
		Properties: &[]cdx.Property{{Name: PropScope, Value: string(d.Scope)}},
	}
	if !d.Timestamp.IsZero() {
		bom.Metadata.Timestamp = d.Timestamp.UTC().Format(time.RFC3339)
	}
	components := make([]cdx.Component, 0, len(d.Components))
	deps := make([]cdx.Dependency, 0, len(d.Components)+1)
	roots := d.Roots
	deps = append(deps, cdx.Dependency{Ref: SubjectRef, Dependencies: &roots})
	for _, c := range d.Components {
		components = append(components, cdxComponent(c))
		dependsOn := c.DependsOn
		if dependsOn == nil {
			dependsOn = []string{}
		}
		deps = append(deps, cdx.Dependency{Ref: c.StorePath, Dependencies: &dependsOn})
	}
	bom.Components = &components
	bom.Dependencies = &deps
	return bom
}

func cdxSubject(d *Document) *cdx.Component {
	subject := &cdx.Component{BOMRef: SubjectRef, Type: cdx.ComponentTypeApplication, Name: d.Name()}
	if len(d.Roots) == 1 {
		if root := d.Component(d.Roots[0]); root != nil {
			subject.Name, subject.Version = root.Name, root.Version
		}
	}
	props := make([]cdx.Property, len(d.Roots))
	for i, r := range d.Roots {
		props[i] = cdx.Property{Name: PropRoot, Value: r}
	}
	subject.Properties = &props
	return subject
}

func cdxComponent(c *Component) cdx.Component {
	cc := cdx.Component{
		BOMRef:      c.StorePath,
		Type:        cdx.ComponentTypeLibrary,
		Name:        c.Name,
		Version:     c.Version,
		Description: c.Description,
		CPE:         c.CPE,
		PackageURL:  c.PURL(),
	}
	if c.NarHash != "" {
		cc.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: c.NarHash}}
	}
	if len(c.Licenses) > 0 {
		cc.Licenses = &cdx.Licenses{{Expression: LicenseExpression(c.Licenses)}}
	}
	if c.Homepage != "" {
		cc.ExternalReferences = &[]cdx.ExternalReference{{Type: cdx.ERTypeWebsite, URL: c.Homepage}}
	}
	if len(c.Patches) > 0 {
		cc.Pedigree = &cdx.Pedigree{Patches: cdxPatches(c)}
	}
	props := []cdx.Property{}
	if c.Deriver != "" {
		props = append(props, cdx.Property{Name: PropDeriver, Value: c.Deriver})
	}
	if c.NarHash != "" {
		props = append(props, cdx.Property{Name: PropNarSize, Value: strconv.FormatUint(c.NarSize, 10)})
	}
	if c.Output != "" {
		props = append(props, cdx.Property{Name: PropOutput, Value: c.Output})
	}
	props = append(props, cdx.Property{Name: PropStorePath, Value: c.StorePath})
	cc.Properties = &props
	return cc
}

// cdxPatches lists the deriver's patches; a patch named after CVEs
// resolves them.
func cdxPatches(c *Component) *[]cdx.Patch {
	patches := make([]cdx.Patch, 0, len(c.Patches))
	for _, p := range c.Patches {
		patch := cdx.Patch{Type: cdx.PatchTypeUnofficial, Diff: &cdx.Diff{URL: "file://" + p}}
		var issues []cdx.Issue
		for _, id := range patchCVEs(p) {
			issues = append(issues, cdx.Issue{Type: cdx.IssueTypeSecurity, ID: id, Name: id, Description: "fixed by " + patchName(p)})
		}
		if issues != nil {
			patch.Resolves = &issues
		}
		patches = append(patches, patch)
	}
	return &patches
}

// LicenseExpression joins licence ids into an SPDX licence expression: a
// Nix meta.license list means that every licence in it applies.
func LicenseExpression(ids []string) string {
	if len(ids) == 1 {
		return ids[0]
	}
	return strings.Join(ids, " AND ")
}
