package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kix-project/kix/test/fixture"
)

// kixRunner runs the kix binary for the demo: one-shot commands, and
// servers that run until the demo ends.
type kixRunner struct {
	bin     string
	w       io.Writer
	servers []*exec.Cmd
}

func (k *kixRunner) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, k.bin, args...)
	cmd.Env = fixture.Env()
	return cmd
}

// output runs kix and returns its stdout.
func (k *kixRunner) output(ctx context.Context, args ...string) (string, error) {
	cmd := k.command(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("kix %v: %v\n%s", args, err, stderr.String())
	}
	return string(out), nil
}

// startRegistry runs `kix registry` on a free loopback port, its cache and
// log under dir, and returns its address once it answers.
func (k *kixRunner) startRegistry(ctx context.Context, dir string) (string, error) {
	addr, err := freeLoopback()
	if err != nil {
		return "", err
	}
	err = k.startServer(ctx, dir, "kix-registry", "http://"+addr+"/v2/",
		"registry", "--listen", addr, "--cache-dir", filepath.Join(dir, "kix-registry"))
	return addr, err
}

// startServer runs kix with args until the demo ends, its log under
// dir/logs/NAME.log, and waits until readyURL answers (if given).
func (k *kixRunner) startServer(ctx context.Context, dir, name, readyURL string, args ...string) error {
	logPath := filepath.Join(dir, "logs", name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(k.bin, args...)
	cmd.Env = fixture.Env()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	k.servers = append(k.servers, cmd)
	fmt.Fprintf(k.w, "    $ kix %s\n", strings.Join(args, " "))
	if readyURL == "" {
		return nil
	}
	return waitFor(ctx, name+" to answer", func() bool {
		resp, err := http.Get(readyURL)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
}

func waitFor(ctx context.Context, what string, ok func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for !ok() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// stopAll interrupts the servers and waits for them.
func (k *kixRunner) stopAll() {
	for _, cmd := range k.servers {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
}

// show runs kix with args and prints it as a terminal would: the command
// (written with shortArgs in place of args, which hold real paths), then
// its output. kix diff's exit status 1 (changes) is not a failure.
func (k *kixRunner) show(ctx context.Context, args, shortArgs []string, sub ...string) (string, error) {
	fmt.Fprintf(k.w, "    $ kix %s\n", strings.Join(append(sub, shortArgs...), " "))
	cmd := k.command(ctx, append(sub, args...)...)
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Fprintln(k.w, strings.TrimRight("    "+line, " "))
	}
	if exit, ok := err.(*exec.ExitError); ok && sub[0] == "diff" && exit.ExitCode() == 1 {
		return string(out), nil
	}
	if err != nil {
		return "", fmt.Errorf("kix %s: %w", strings.Join(sub, " "), err)
	}
	return string(out), nil
}
