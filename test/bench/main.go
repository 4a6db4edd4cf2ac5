// Command bench measures kix against the peers its users compare it with,
// side by side on the same input and machine, and prints the ratios. `make
// bench` runs it; timings never appear in the normal tests.
//
//	go run ./test/bench -kix bin/kix -distribution PATH [registry ...]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/kix-project/kix/test/fixture"
)

type benchConfig struct {
	kix          string
	distribution string
	syft         string
}

var benches = map[string]func(ctx context.Context, cfg benchConfig) error{
	"cache":    benchCache,
	"registry": benchRegistry,
	"sbom":     benchSBOM,
	"deploy":   benchDeploy,
}

func main() {
	var cfg benchConfig
	flag.StringVar(&cfg.kix, "kix", filepath.Join(fixture.Root(), "bin", "kix"), "the kix binary")
	flag.StringVar(&cfg.distribution, "distribution", "", "the distribution registry binary (registry benchmark)")
	flag.StringVar(&cfg.syft, "syft", "", "the syft binary (sbom benchmark)")
	flag.Parse()
	names := flag.Args()
	if len(names) == 0 {
		for n := range benches {
			names = append(names, n)
		}
		slices.Sort(names)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	failed := false
	for _, n := range names {
		run, ok := benches[n]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown benchmark %q\n", n)
			os.Exit(2)
		}
		if err := run(ctx, cfg); err != nil {
			fmt.Fprintf(os.Stderr, "benchmark %s failed: %v\n", n, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
