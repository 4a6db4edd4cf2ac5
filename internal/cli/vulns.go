package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kix-project/kix/internal/sbom"
)

// Exit codes of kix vulns and kix licenses.
const (
	exitFindings = 1 // findings at or above --fail-on, or licence violations
	exitError    = 3 // the target, database or policy could not be read
)

// VulnsOptions are the flags of `kix vulns`.
type VulnsOptions struct {
	IO IOStreams
	targetOptions
	DB        string
	Whitelist string
	FailOn    string
	Output    string
}

// NewCmdVulns builds `kix vulns`.
func NewCmdVulns(streams IOStreams) *cobra.Command {
	opts := &VulnsOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "vulns TARGET --db PATH | -f FILE.nix [-A ATTR] --db PATH",
		Short: "Match a closure against an offline vulnerability database",
		Long: `Match every store path of a closure against an offline vulnerability database:
OSV records (one per .json file, or a .zip of them as osv.dev exports) and NVD
CVE JSON 2.0 feeds (nvdcve-2.0-*.json, optionally .gz), in the file or folder
--db names. OSV records match by package name and version; NVD CVEs by CPE
(the package's meta CPE, or cpe:2.3:a:*:<name>:<version> as vulnix makes it).

A CVE is not reported when the derivation's patches are named after it (as
vulnix and sbomnix read them), nor when the --whitelist file accepts it:

  - id: CVE-2024-1234        # the CVE reported, or the advisory's own id
    package: busybox         # optional: this package only
    version: 1.35.0          # optional: this version only
    reason: the applet is not in our image
    until: 2025-12-31        # optional: after this day the entry expires

` + targetHelp + `

Output: -o table (default), json, yaml or sarif (SARIF 2.1.0).

Exit status: 0 no finding at or above --fail-on; 1 findings at or above
--fail-on; 2 wrong usage; 3 the target, the database or the whitelist could
not be read.`,
		Example: `  kix vulns ./result --db ./advisories
  kix vulns nix.internal/0c7x...-my-web-server-1.4.2 --db ./nvd --fail-on high
  kix vulns -f app.nix -A web --db osv.zip --whitelist accepted.yaml -o sarif > vulns.sarif`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return gateError(vulnsRun(cmd.Context(), opts, args))
		},
	}
	fs := cmd.Flags()
	opts.addTargetFlags(fs)
	fs.StringVar(&opts.DB, "db", "", "vulnerability database: a file or folder of OSV records and NVD CVE 2.0 feeds (required)")
	fs.StringVar(&opts.Whitelist, "whitelist", "", "YAML file of accepted findings, each with a reason and an optional expiry date")
	fs.StringVar(&opts.FailOn, "fail-on", "none", "exit 1 when findings of this severity or higher remain: none (any finding), unknown, low, medium, high, critical")
	fs.StringVarP(&opts.Output, "output", "o", "table", "output format: table, json, yaml or sarif")
	return cmd
}

// gateError gives errors of commands that gate (vulns, licenses) exit
// status 3, keeping 1 for findings and 2 for wrong usage.
func gateError(err error) error {
	if err == nil || isUsageError(err) {
		return err
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		return err
	}
	return &ExitError{Code: exitError, Err: err}
}

func vulnsRun(ctx context.Context, opts *VulnsOptions, args []string) error {
	failOn, err := sbom.ParseSeverity(opts.FailOn)
	if err != nil {
		return usageErrorf("--fail-on: %v", err)
	}
	format, err := parseOutputFormat(opts.Output, outputTable, outputSARIF)
	if err != nil {
		return err
	}
	if opts.DB == "" {
		return usageErrorf("--db is required: a file or folder of OSV records or NVD CVE 2.0 feeds")
	}
	db, err := sbom.LoadDB(opts.DB)
	if err != nil {
		return err
	}
	var scan sbom.ScanOptions // whitelist entries expire by the current time
	if opts.Whitelist != "" {
		if scan.Whitelist, err = sbom.LoadWhitelist(opts.Whitelist); err != nil {
			return err
		}
	}
	d, err := opts.document(ctx, args)
	if err != nil {
		return err
	}
	report := sbom.Scan(d, db, scan)
	if err := writeVulns(opts.IO.Out, format, report, d); err != nil {
		return err
	}
	if failing := report.AtLeast(failOn); len(failing) > 0 {
		return &ExitError{Code: exitFindings, Err: fmt.Errorf("%d findings at or above severity %s", len(failing), failOn)}
	}
	return nil
}

func writeVulns(w io.Writer, format outputFormat, r *sbom.Report, d *sbom.Document) error {
	switch format {
	case outputSARIF:
		return sbom.WriteSARIF(w, r, d.Tool)
	case outputJSON, outputYAML:
		return writeStructured(w, format, r)
	}
	if len(r.Findings) == 0 {
		fmt.Fprintf(w, "No vulnerabilities found in %d store paths.\n", len(d.Components))
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEVERITY\tSCORE\tID\tPACKAGE\tVERSION\tSTORE PATH")
		for _, f := range r.Findings {
			score := "-"
			if f.Score > 0 {
				score = strconv.FormatFloat(f.Score, 'f', 1, 64)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Severity, score, f.ID, f.Package, f.Version, f.StorePath)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, f := range r.Findings {
			if f.Note != "" {
				fmt.Fprintf(w, "note: %s in %s: %s\n", f.ID, f.Package, f.Note)
			}
		}
	}
	for _, f := range r.Suppressed {
		fmt.Fprintf(w, "suppressed: %s in %s %s: %s\n", f.ID, f.Package, f.Version, f.Suppressed)
	}
	return nil
}
