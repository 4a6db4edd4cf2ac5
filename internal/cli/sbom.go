package cli

import (
	"context"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/kix-project/kix/internal/sbom"
)

// SBOMOptions are the flags of `kix sbom`.
type SBOMOptions struct {
	IO IOStreams
	targetOptions
	Format       string
	Timestamp    bool
	RandomSerial bool
}

// NewCmdSBOM builds `kix sbom`.
func NewCmdSBOM(streams IOStreams) *cobra.Command {
	opts := &SBOMOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "sbom TARGET | -f FILE.nix [-A ATTR]",
		Short: "Print the software bill of materials of a closure (CycloneDX or SPDX JSON)",
		Long: `Print the SBOM of exactly what a closure holds: one component per store path,
with its name and version, a pkg:nix package URL, the NAR hash as SHA-256, the
store path, and the reference graph as dependencies.

` + targetHelp + `

Formats: --format cyclonedx (CycloneDX 1.6 JSON, the default) or spdx (SPDX
2.3 JSON). The output is deterministic: the same closure gives the same bytes,
with a serial number derived from the content and no timestamp, unless
--timestamp or --random-serial ask for them.

Exit status: 0 success, 1 failure (an unknown path, a failed build), 2 wrong
usage.`,
		Example: `  kix sbom ./result > app.cdx.json
  kix sbom nix.internal/0c7x...-my-web-server-1.4.2 --format spdx > web.spdx.json
  kix sbom -f app.nix -A web --buildtime`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sbomRun(cmd.Context(), opts, args)
		},
	}
	fs := cmd.Flags()
	opts.addTargetFlags(fs)
	fs.StringVar(&opts.Format, "format", "cyclonedx", "document format: cyclonedx (1.6 JSON) or spdx (2.3 JSON)")
	fs.BoolVar(&opts.Timestamp, "timestamp", false, "record the current time as the creation time")
	fs.BoolVar(&opts.RandomSerial, "random-serial", false, "use a random serial number instead of one derived from the content")
	return cmd
}

// sbomEncoders are the --format values.
var sbomEncoders = map[string]func(io.Writer, *sbom.Document) error{
	"cyclonedx": sbom.EncodeCycloneDX,
	"spdx":      sbom.EncodeSPDX,
}

func sbomRun(ctx context.Context, opts *SBOMOptions, args []string) error {
	encode, ok := sbomEncoders[opts.Format]
	if !ok {
		return usageErrorf("unknown --format %q (want cyclonedx or spdx)", opts.Format)
	}
	d, err := opts.document(ctx, args)
	if err != nil {
		return err
	}
	if opts.Timestamp {
		d.Timestamp = time.Now()
	}
	if opts.RandomSerial {
		if err := d.RandomSerial(); err != nil {
			return err
		}
	}
	return encode(opts.IO.Out, d)
}
