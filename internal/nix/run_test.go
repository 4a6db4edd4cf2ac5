package nix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kix-project/kix/test/testenv"
)

func TestRun(t *testing.T) {
	testenv.LookPath(t, "nix")
	withNixConf(t)
	out, err := Run(t.Context(), nil, "nix", "--extra-experimental-features", "nix-command", "eval", "--raw", "--expr", `"hi"`)
	if err != nil || string(out) != "hi" {
		t.Fatalf("Run = %q, %v; want \"hi\"", out, err)
	}

	var log bytes.Buffer
	expr := `builtins.trace "to the log" (throw "the shop is closed")`
	_, err = Run(t.Context(), &log, "nix", "--extra-experimental-features", "nix-command", "eval", "--expr", expr)
	var cmdErr *CommandError
	if !errors.As(err, &cmdErr) {
		t.Fatalf("error %v (%T) is not a *CommandError", err, err)
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() == 0 {
		t.Errorf("error %v does not wrap the exit status", err)
	}
	for _, want := range []string{"the shop is closed", "to the log"} {
		if !strings.Contains(cmdErr.Stderr, want) || !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
		if !strings.Contains(log.String(), want) {
			t.Errorf("log %q lacks %q", log.String(), want)
		}
	}

	_, err = Run(t.Context(), nil, "kix-no-such-command")
	if errors.As(err, &cmdErr) || !errors.Is(err, exec.ErrNotFound) || !strings.Contains(err.Error(), "running kix-no-such-command") {
		t.Errorf("missing command: error %v, want one wrapping exec.ErrNotFound and naming it", err)
	}
}

func TestCommandErrorShowsTheEndOfStderr(t *testing.T) {
	var lines []string
	for i := 1; i <= 30; i++ {
		lines = append(lines, fmt.Sprintf("line %d", i))
	}
	err := &CommandError{Err: errors.New("exit status 1"), Stderr: strings.Join(lines, "\n")}
	want := "exit status 1: " + strings.Join(lines[30-stderrLines:], "\n")
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	if got := (&CommandError{Err: errors.New("signal: killed")}).Error(); got != "signal: killed" {
		t.Errorf("without stderr, Error() = %q", got)
	}
}

func TestLastLines(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb", 5, "a\nb"},
		{"", 3, ""},
	} {
		if got := lastLines(tt.in, tt.n); got != tt.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// A command killed because its context ended fails with the context's
// error, so callers can tell a cancelled build from a failed one.
func TestRunStoppedByContext(t *testing.T) {
	sleep := testenv.LookPath(t, "sleep")
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		time.Sleep(200 * time.Millisecond)
		cancel()
	}()
	_, err := Run(ctx, nil, sleep, "600")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run stopped by its context: %v, want context.Canceled", err)
	}
}
