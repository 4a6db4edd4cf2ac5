// Package cli holds kix's commands. Each command is an Options struct, a
// NewCmdX constructor that binds flags to it, and a run function that writes
// only through the IOStreams it is given, so tests run commands in-process and
// check what they printed.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

// IOStreams are the standard streams a command reads and writes.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// StdStreams returns the process's standard streams.
func StdStreams() IOStreams {
	return IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
}

// ExitError carries a specific exit code out of a command, as `kix diff`
// needs (1 means "there are changes", not "something broke").
type ExitError struct {
	Code int
	Err  error // may be nil: the command already said what it had to
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Exit codes kix documents. Commands with their own meanings (diff, vulns,
// licenses) say so in their help.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// NewRootCmd builds the kix command tree.
func NewRootCmd(streams IOStreams) *cobra.Command {
	var verbosity int
	root := &cobra.Command{
		Use:   "kix",
		Short: "Nix closures as the single source of truth for Kubernetes",
		Long: `kix turns a Nix expression into what runs on a Kubernetes cluster: the
manifests, the images they name, the SBOM of those images and the store paths
pods mount, all derived from one closure.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			slog.SetDefault(slog.New(newLogHandler(streams.ErrOut, verbosity)))
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.PersistentFlags().IntVarP(&verbosity, "v", "v", 0, "log verbosity: 0 warnings and errors, 1 progress, 2 debug")
	root.CompletionOptions.HiddenDefaultCmd = true

	root.AddCommand(
		NewCmdBuild(streams),
		NewCmdApply(streams),
		NewCmdDiff(streams),
		NewCmdPrune(streams),
		NewCmdController(streams),
		NewCmdCatalog(streams),
		NewCmdRegistry(streams),
		NewCmdPush(streams),
		NewCmdImage(streams),
		NewCmdCache(streams),
		NewCmdCSI(streams),
		NewCmdSBOM(streams),
		NewCmdVulns(streams),
		NewCmdLicenses(streams),
		NewCmdVersion(streams),
	)
	markUsageErrors(root)
	return root
}

// markUsageErrors makes wrong arguments and bad flags exit with ExitUsage,
// for every command in the tree.
func markUsageErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	if cmd.Run == nil && cmd.RunE == nil {
		// A group: called alone it shows its help; with a stray word, cobra
		// only checks the arguments of runnable commands.
		cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	}
	args := cmd.Args
	if args == nil {
		args = cobra.NoArgs // "unknown command"
	}
	cmd.Args = func(c *cobra.Command, a []string) error {
		if err := args(c, a); err != nil {
			return usageError{err}
		}
		return nil
	}
	for _, sub := range cmd.Commands() {
		markUsageErrors(sub)
	}
}

// Main runs kix with args and returns the process exit code.
func Main(ctx context.Context, args []string, streams IOStreams) int {
	root := NewRootCmd(streams)
	root.SetArgs(joinNixArgs(args))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		if exit.Err != nil {
			fmt.Fprintln(streams.ErrOut, "error:", exit.Err)
		}
		return exit.Code
	}
	fmt.Fprintln(streams.ErrOut, "error:", err)
	if isUsageError(err) {
		return ExitUsage
	}
	return ExitFailure
}

// usageError marks errors in how a command was called (bad flag values,
// wrong argument counts) so they exit with ExitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func isUsageError(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

func newLogHandler(w io.Writer, verbosity int) slog.Handler {
	level := slog.LevelWarn
	switch {
	case verbosity >= 2:
		level = slog.LevelDebug
	case verbosity == 1:
		level = slog.LevelInfo
	}
	return slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
}
