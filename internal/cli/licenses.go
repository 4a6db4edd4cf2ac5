package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kix-project/kix/internal/sbom"
)

// LicensesOptions are the flags of `kix licenses`.
type LicensesOptions struct {
	IO IOStreams
	targetOptions
	Policy string
	Output string
}

// NewCmdLicenses builds `kix licenses`.
func NewCmdLicenses(streams IOStreams) *cobra.Command {
	opts := &LicensesOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "licenses TARGET | -f FILE.nix [-A ATTR] [--policy FILE]",
		Short: "List the licences in a closure and check them against a policy",
		Long: `List each store path's licences (SPDX ids, from the packages' meta.license; a
licence without an SPDX id becomes LicenseRef-nixpkgs-<shortName>, and so does
one given as a string, unless it is an SPDX id in any case: "mit" is MIT) and,
with --policy, check them:

  deny: [AGPL-*, LicenseRef-nixpkgs-unfree]   # patterns (* ? [..]), any case
  allow: [MIT, Apache-2.0, "GPL-*", "LGPL-*"] # optional: only these pass
  unknown: deny                               # paths without a licence (default allow)
  exceptions:
    - package: agpl-tool                      # exempt by name (a pattern too)
      reason: build-time only

Licences come from a Nix expression, so give the target as -f FILE.nix
[-A ATTR]: a bare store path carries no licence information, and --policy
needs -f (a policy checked against no licences would always pass).

` + targetHelp + `

Output: -o table (default), json or yaml.

Exit status: 0 no violation; 1 violations (each is named on standard error
with the rule it breaks); 2 wrong usage; 3 the target or the policy could
not be read.`,
		Example: `  kix licenses -f app.nix -A web
  kix licenses -f app.nix -A web --policy licence-policy.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return gateError(licensesRun(cmd.Context(), opts, args))
		},
	}
	fs := cmd.Flags()
	opts.addTargetFlags(fs)
	fs.StringVar(&opts.Policy, "policy", "", "YAML licence policy to check (deny, allow, unknown, exceptions)")
	fs.StringVarP(&opts.Output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

// licenseEntry is one row of `kix licenses`.
type licenseEntry struct {
	StorePath string   `json:"storePath"`
	Package   string   `json:"package"`
	Version   string   `json:"version,omitempty"`
	Licenses  []string `json:"licenses"`
}

// licenseReport is the -o json|yaml form.
type licenseReport struct {
	Components []licenseEntry   `json:"components"`
	Violations []sbom.Violation `json:"violations"`
}

func licensesRun(ctx context.Context, opts *LicensesOptions, args []string) error {
	format, err := parseOutputFormat(opts.Output, outputTable)
	if err != nil {
		return err
	}
	if opts.Policy != "" && opts.File == "" {
		return usageErrorf("--policy needs -f FILE.nix [-A ATTR]: only a Nix expression gives licences, and a TARGET without them would always pass")
	}
	var policy *sbom.Policy
	if opts.Policy != "" {
		if policy, err = sbom.LoadPolicy(opts.Policy); err != nil {
			return err
		}
	}
	d, err := opts.document(ctx, args)
	if err != nil {
		return err
	}
	report := licenseReport{Components: []licenseEntry{}, Violations: []sbom.Violation{}}
	for _, c := range d.Components {
		lics := c.Licenses
		if lics == nil {
			lics = []string{}
		}
		report.Components = append(report.Components, licenseEntry{c.StorePath, c.Name, c.Version, lics})
	}
	if policy != nil {
		report.Violations = append(report.Violations, policy.Check(d)...)
	}
	if format == outputText {
		err = writeLicenseTable(opts.IO.Out, report, policy != nil)
	} else {
		err = writeStructured(opts.IO.Out, format, report)
	}
	if err != nil {
		return err
	}
	if len(report.Violations) > 0 {
		for _, v := range report.Violations {
			fmt.Fprintln(opts.IO.ErrOut, "violation:", v)
		}
		return &ExitError{Code: exitFindings, Err: fmt.Errorf("%d licence policy violations (%s)", len(report.Violations), opts.Policy)}
	}
	return nil
}

func writeLicenseTable(w io.Writer, r licenseReport, checked bool) error {
	bad := map[string]bool{}
	for _, v := range r.Violations {
		bad[v.StorePath] = true
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "PACKAGE\tVERSION\tLICENSES\tSTORE PATH"
	if checked {
		header = "PACKAGE\tVERSION\tLICENSES\tVERDICT\tSTORE PATH"
	}
	fmt.Fprintln(tw, header)
	for _, c := range r.Components {
		lics := strings.Join(c.Licenses, ", ")
		if lics == "" {
			lics = "-"
		}
		version := c.Version
		if version == "" {
			version = "-"
		}
		if !checked {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Package, version, lics, c.StorePath)
			continue
		}
		verdict := "ok"
		if bad[c.StorePath] {
			verdict = "VIOLATION"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Package, version, lics, verdict, c.StorePath)
	}
	return tw.Flush()
}
