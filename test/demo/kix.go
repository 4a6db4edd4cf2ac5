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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	logPath := filepath.Join(dir, "logs", "kix-registry.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	cmd := exec.Command(k.bin, "registry", "--listen", addr, "--cache-dir", filepath.Join(dir, "kix-registry"))
	cmd.Env = fixture.Env()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return "", err
	}
	logFile.Close()
	k.servers = append(k.servers, cmd)
	fmt.Fprintf(k.w, "    $ kix registry --listen %s --cache-dir %s\n", addr, filepath.Join(dir, "kix-registry"))
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			data, _ := os.ReadFile(logPath)
			return "", fmt.Errorf("kix registry did not start: %v\n%s", err, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopAll interrupts the servers and waits for them.
func (k *kixRunner) stopAll() {
	for _, cmd := range k.servers {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
}
