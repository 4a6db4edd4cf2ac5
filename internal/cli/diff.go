package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kix-project/kix/internal/deploy"
)

// DiffOptions are the flags of `kix diff`.
type DiffOptions struct {
	IO IOStreams
	evalOptions
	imageRefOptions
	deployOptions
	Color  string
	Output string
}

// Exit codes of `kix diff`, as kubectl diff's.
const (
	diffNoChanges = 0
	diffChanges   = 1
	diffError     = 2
)

// NewCmdDiff builds `kix diff`.
func NewCmdDiff(streams IOStreams) *cobra.Command {
	opts := &DiffOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "diff -f FILE [--inventory NAME]",
		Short: "Show what kix apply would change, and what a prune would delete",
		Long: `Evaluate -f and ask the server, with a server-side dry run, what applying each
object would change; print a unified diff of each changed object (managed
fields and status left out) and, with --inventory, the members a prune would
delete. Nothing is changed.

Exit status, as kubectl diff's: 0 nothing would change, 1 something would,
2 or more an error.`,
		Example: `  kix diff -f app.nix --inventory shop`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			code, err := diffRun(cmd.Context(), opts)
			if err != nil {
				if isUsageError(err) {
					return err
				}
				return &ExitError{Code: diffError, Err: err}
			}
			if code != diffNoChanges {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	opts.addEvalFlags(fs)
	opts.addDeployFlags(fs)
	opts.addApplyFlags(fs)
	opts.addImageRefFlags(fs)
	fs.StringVar(&opts.Color, "color", "auto", "colour the diff: auto (when writing to a terminal), always or never")
	fs.StringVarP(&opts.Output, "output", "o", "", "output format: json or yaml (default: a unified diff)")
	return cmd
}

func diffRun(ctx context.Context, opts *DiffOptions) (int, error) {
	format, err := parseOutputFormat(opts.Output)
	if err != nil {
		return 0, err
	}
	if err := checkInput(&opts.evalOptions, &opts.imageRefOptions); err != nil {
		return 0, err
	}
	color, err := useColor(opts.Color, opts.IO.Out)
	if err != nil {
		return 0, err
	}
	m, ns, inv, err := opts.connect(opts.IO)
	if err != nil {
		return 0, err
	}
	res, err := evaluatePublished(ctx, &opts.evalOptions, &opts.imageRefOptions, opts.IO)
	if err != nil {
		return 0, err
	}
	diffs, err := m.Diff(ctx, res.Objects, deploy.DiffOptions{DefaultNamespace: ns, EnforceNamespace: opts.enforceNamespace, Inventory: inv, Prune: inv != nil, AllowEmpty: opts.AllowEmpty, Force: opts.ForceConflicts, Adopt: opts.Adopt})
	if err != nil {
		return 0, err
	}
	changed := 0
	for _, d := range diffs {
		if d.Action != deploy.Unchanged && d.Action != deploy.Kept {
			changed++
		}
	}
	if format != outputText {
		if diffs == nil {
			diffs = []deploy.ObjectDiff{}
		}
		err = writeStructured(opts.IO.Out, format, diffs)
	} else {
		err = writeDiffs(opts.IO.Out, diffs, color)
		fmt.Fprintf(opts.IO.ErrOut, "%d of %d objects would change\n", changed, len(diffs))
	}
	if err != nil {
		return 0, err
	}
	if changed > 0 {
		return diffChanges, nil
	}
	return diffNoChanges, nil
}

func useColor(flag string, w io.Writer) (bool, error) {
	switch flag {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto":
		return isTerminal(w), nil
	}
	return false, usageErrorf(`--color must be auto, always or never, not %q`, flag)
}

const (
	red   = "\x1b[31m"
	green = "\x1b[32m"
	cyan  = "\x1b[36m"
	reset = "\x1b[0m"
)

func writeDiffs(w io.Writer, diffs []deploy.ObjectDiff, color bool) error {
	for _, d := range diffs {
		switch d.Action {
		case deploy.Unchanged:
			continue
		case deploy.Kept:
			fmt.Fprintf(w, "# %s leaves the set but is kept: %s\n", d.Object, d.Message)
			continue
		}
		fmt.Fprintf(w, "# %s would be %s", d.Object, d.Action)
		if d.Message != "" {
			fmt.Fprintf(w, " (%s)", d.Message)
		}
		fmt.Fprintln(w)
		for _, line := range strings.SplitAfter(d.Diff, "\n") {
			if line == "" {
				continue
			}
			if color {
				switch {
				case strings.HasPrefix(line, "+++") || strings.HasPrefix(line, "---"):
				case strings.HasPrefix(line, "+"):
					line = green + strings.TrimSuffix(line, "\n") + reset + "\n"
				case strings.HasPrefix(line, "-"):
					line = red + strings.TrimSuffix(line, "\n") + reset + "\n"
				case strings.HasPrefix(line, "@@"):
					line = cyan + strings.TrimSuffix(line, "\n") + reset + "\n"
				}
			}
			if _, err := io.WriteString(w, line); err != nil {
				return err
			}
		}
	}
	return nil
}
