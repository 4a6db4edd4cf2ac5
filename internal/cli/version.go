package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kix-project/kix/internal/version"
)

// VersionOptions are the flags of `kix version`.
type VersionOptions struct {
	IO     IOStreams
	Output string
}

// NewCmdVersion builds `kix version`.
func NewCmdVersion(streams IOStreams) *cobra.Command {
	opts := &VersionOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the kix version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return versionRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "", "output format: json or yaml")
	return cmd
}

func versionRun(opts *VersionOptions) error {
	format, err := parseOutputFormat(opts.Output)
	if err != nil {
		return err
	}
	info := version.Get()
	if format != outputText {
		return writeStructured(opts.IO.Out, format, info)
	}
	_, err = fmt.Fprintf(opts.IO.Out, "kix %s\ncommit: %s\ngo: %s\nplatform: %s\n",
		info.Version, info.Commit, info.GoVersion, info.Platform)
	return err
}
