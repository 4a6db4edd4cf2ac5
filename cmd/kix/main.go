// Command kix makes a Nix expression the single source of truth for
// Kubernetes. See `kix --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kix-project/kix/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.StdStreams())
	stop()
	os.Exit(code)
}
