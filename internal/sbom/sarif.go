package sbom

import (
	"fmt"
	"io"
	"strconv"

	"github.com/owenrumney/go-sarif/v2/sarif"
)

// InformationURI is where SARIF readers learn about the tool.
const InformationURI = "https://github.com/kix-project/kix"

// WriteSARIF writes a report as a SARIF 2.1.0 log: one rule per advisory
// (with GitHub's security-severity property), one result per finding,
// located at the store path, and suppressed findings as results with an
// accepted suppression saying why.
func WriteSARIF(w io.Writer, r *Report, tool Tool) error {
	log, err := sarif.New(sarif.Version210)
	if err != nil {
		return err
	}
	run := sarif.NewRunWithInformationURI(tool.Name, InformationURI)
	if tool.Version != "" {
		run.Tool.Driver.Version = &tool.Version
	}
	for _, f := range r.Findings {
		addSARIFResult(run, f)
	}
	for _, f := range r.Suppressed {
		res := addSARIFResult(run, f)
		guid := findingGUID(f)
		res.AddSuppression(sarif.NewSuppression("external").
			WithStatus("accepted").
			WithJustifcation(f.Suppressed).
			WithGuid(guid).
			WithLocation(sarifLocation(f)))
	}
	log.AddRun(run)
	return log.PrettyWrite(w)
}

func addSARIFResult(run *sarif.Run, f Finding) *sarif.Result {
	rule := run.AddRule(f.ID)
	if rule.ShortDescription == nil {
		desc := f.Summary
		if desc == "" {
			desc = f.ID
		}
		rule.WithName(f.ID).WithShortDescription(sarif.NewMultiformatMessageString(desc))
		if f.URL != "" {
			rule.WithHelpURI(f.URL)
		}
		props := sarif.NewPropertyBag()
		props.Add("tags", []string{"security", "vulnerability"})
		if f.Score > 0 {
			props.AddString("security-severity", strconv.FormatFloat(f.Score, 'f', 1, 64))
		}
		props.AddString("severity", string(f.Severity))
		rule.AttachPropertyBag(props)
	}
	msg := fmt.Sprintf("%s %s (%s) is affected by %s (severity %s)", f.Package, f.Version, f.StorePath, f.ID, f.Severity)
	if f.Summary != "" {
		msg += ": " + f.Summary
	}
	if f.Note != "" {
		msg += "; " + f.Note
	}
	res := run.CreateResultForRule(f.ID).
		WithLevel(sarifLevel(f.Severity)).
		WithMessage(sarif.NewTextMessage(msg)).
		WithLocations([]*sarif.Location{sarifLocation(f)})
	res.WithPartialFingerPrints(map[string]any{"kix/finding/v1": findingGUID(f)})
	return res
}

func sarifLocation(f Finding) *sarif.Location {
	return sarif.NewLocationWithPhysicalLocation(
		sarif.NewPhysicalLocation().WithArtifactLocation(sarif.NewSimpleArtifactLocation("file://" + f.StorePath)))
}

// sarifLevel maps severities to SARIF levels: high and critical are
// errors, medium a warning, the rest notes.
func sarifLevel(s Severity) string {
	switch {
	case s.AtLeast(SeverityHigh):
		return "error"
	case s.AtLeast(SeverityMedium):
		return "warning"
	}
	return "note"
}

// findingGUID is a stable id for a finding: the same vulnerability of the
// same store path always gets the same one.
func findingGUID(f Finding) string {
	return nameUUID([]byte(f.ID + "\x00" + f.StorePath))
}
