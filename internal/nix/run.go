package nix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// CommandError is a Nix command (nix, nix-store) that ran and failed.
type CommandError struct {
	Err    error  // as exec.Cmd.Run returned it: the exit status, or the signal
	Stderr string // what the command wrote to stderr, trimmed
}

// stderrLines is how much of a failed command's stderr its error shows:
// the end of a long build log, where the error is.
const stderrLines = 20

func (e *CommandError) Error() string {
	if e.Stderr == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + ": " + lastLines(e.Stderr, stderrLines)
}

func (e *CommandError) Unwrap() error { return e.Err }

// Run runs a Nix command and returns what it wrote to stdout. What it
// writes to stderr also goes to log, if not nil. If the command runs and
// fails the error is a *CommandError; if it cannot start (no such
// command), the error says "running <name>"; if ctx ends first, the error
// wraps ctx's cause.
func Run(ctx context.Context, log io.Writer, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if log != nil {
		cmd.Stderr = io.MultiWriter(&stderr, log)
	}
	err := cmd.Run()
	var execErr *exec.Error
	switch {
	case errors.As(err, &execErr):
		return nil, fmt.Errorf("running %s: %w", name, err)
	case err != nil && ctx.Err() != nil:
		// Killed because ctx ended: say so, not "signal: killed".
		return nil, fmt.Errorf("%s stopped: %w", name, context.Cause(ctx))
	case err != nil:
		return nil, &CommandError{Err: err, Stderr: strings.TrimSpace(stderr.String())}
	}
	return stdout.Bytes(), nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
