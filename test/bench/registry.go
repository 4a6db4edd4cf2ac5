package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/test/fixture"
)

const (
	warmRuns        = 5
	concurrentPulls = 50
	mib             = 1 << 20
)

// benchRegistry compares kix registry with the distribution registry (v3)
// serving the same image of a synthetic closure of over 200 MiB: warm pull
// time, cold first-pull throughput (kix builds layers on the fly), and 50
// concurrent cold pulls, which must build each layer once.
func benchRegistry(ctx context.Context, cfg benchConfig) error {
	if cfg.distribution == "" {
		return errors.New("the registry benchmark needs -distribution (see `make bench`)")
	}
	root, closureBytes, paths, err := benchClosure(ctx)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "kix-bench-registry-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	repo := nix.BaseName(root)

	kixSrv, err := startKixRegistry(ctx, cfg, filepath.Join(work, "kix-cold"))
	if err != nil {
		return err
	}
	start := time.Now()
	pulled, err := pull(ctx, kixSrv.addr+"/"+repo+":latest")
	cold := time.Since(start)
	if err != nil {
		kixSrv.stop()
		return fmt.Errorf("cold pull from kix: %w", err)
	}
	layers, err := layerCount(ctx, kixSrv.addr+"/"+repo+":latest")
	if err != nil {
		kixSrv.stop()
		return err
	}
	kixWarm, err := medianPull(ctx, kixSrv.addr+"/"+repo+":latest")
	kixSrv.stop()
	if err != nil {
		return fmt.Errorf("warm pull from kix: %w", err)
	}

	distWarm, err := distributionWarmPull(ctx, cfg, work, root)
	if err != nil {
		return err
	}

	conc, built, reused, err := concurrentColdPulls(ctx, cfg, filepath.Join(work, "kix-concurrent"), repo)
	if err != nil {
		return err
	}

	fmt.Printf("\nregistry: image of %s\n", root)
	fmt.Printf("  closure: %d store paths, %.1f MiB; image: %d layers, %.1f MiB gzip\n\n",
		paths, float64(closureBytes)/mib, layers, float64(pulled)/mib)
	fmt.Printf("  %-34s %-12s %-14s %s\n", "", "kix", "distribution", "ratio (goal)")
	fmt.Printf("  %-34s %-12s %-14s %.2f (≤ 1.0)\n", fmt.Sprintf("warm pull, median of %d", warmRuns),
		secs(kixWarm), secs(distWarm), kixWarm.Seconds()/distWarm.Seconds())
	fmt.Printf("  %-34s %-12s %-14s %.0f MiB/s of closure (≥ 150)\n", "cold first pull, layers built",
		secs(cold), "n/a", float64(closureBytes)/mib/cold.Seconds())
	fmt.Printf("  %-34s %-12s %-14s %d built, %d reused, for %d layers (each built once)\n",
		fmt.Sprintf("%d concurrent cold pulls", concurrentPulls), secs(conc), "n/a", built, reused, layers)
	if built != layers {
		return fmt.Errorf("%d concurrent cold pulls built %d layers for an image of %d", concurrentPulls, built, layers)
	}
	return nil
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// benchClosure builds the synthetic closure and returns its root, its NAR
// bytes and its path count.
func benchClosure(ctx context.Context) (string, uint64, int, error) {
	root, infos, err := buildClosure(ctx)
	if err != nil {
		return "", 0, 0, err
	}
	var total uint64
	for _, i := range infos {
		total += i.NarSize
	}
	return root, total, len(infos), nil
}

// buildClosure builds bench.nix's closure, with args for its size, and
// returns its root and store paths.
func buildClosure(ctx context.Context, args ...string) (string, []*nix.PathInfo, error) {
	argv := append([]string{"nix-build", filepath.Join(fixture.Dir(), "bench.nix"), "-A", "closure", "--no-out-link", "--max-jobs", "auto"}, args...)
	out, err := run(ctx, argv...)
	if err != nil {
		return "", nil, err
	}
	root := strings.TrimSpace(out)
	infos, err := nix.Closure(ctx, nix.NewLocalStore(), root)
	return root, infos, err
}

func startKixRegistry(ctx context.Context, cfg benchConfig, cacheDir string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return startServer(ctx, "kix registry", addr, "/v2/", cfg.kix, "registry", "--listen", addr, "--cache-dir", cacheDir)
}

func layerCount(ctx context.Context, ref string) (int, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return 0, err
	}
	img, err := remote.Image(r, remote.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	return len(m.Layers), nil
}

func medianPull(ctx context.Context, ref string) (time.Duration, error) {
	var times []time.Duration
	for i := 0; i < warmRuns; i++ {
		start := time.Now()
		if _, err := pull(ctx, ref); err != nil {
			return 0, err
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}

// distributionWarmPull pushes the image into a distribution registry with
// kix push and times warm pulls from it.
func distributionWarmPull(ctx context.Context, cfg benchConfig, work, root string) (time.Duration, error) {
	addr, err := freeAddr()
	if err != nil {
		return 0, err
	}
	config := filepath.Join(work, "distribution.yml")
	storage := filepath.Join(work, "distribution")
	yml := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", storage, addr)
	if err := os.WriteFile(config, []byte(yml), 0o644); err != nil {
		return 0, err
	}
	srv, err := startServer(ctx, "distribution", addr, "/v2/", cfg.distribution, "serve", config)
	if err != nil {
		return 0, err
	}
	defer srv.stop()
	if _, err := run(ctx, cfg.kix, "push", "--insecure", "--cache-dir", filepath.Join(work, "kix-cold"), root, addr+"/bench:latest"); err != nil {
		return 0, fmt.Errorf("pushing into distribution: %w", err)
	}
	if _, err := pull(ctx, addr+"/bench:latest"); err != nil { // warm its caches too
		return 0, err
	}
	return medianPull(ctx, addr+"/bench:latest")
}

// concurrentColdPulls starts kix registry on an empty cache and has 50
// clients pull at once; it returns the time and how many layers the
// registry built and reused.
func concurrentColdPulls(ctx context.Context, cfg benchConfig, cacheDir, repo string) (time.Duration, int, int, error) {
	srv, err := startKixRegistry(ctx, cfg, cacheDir)
	if err != nil {
		return 0, 0, 0, err
	}
	defer srv.stop()
	ref := srv.addr + "/" + repo + ":latest"
	var wg sync.WaitGroup
	errs := make([]error, concurrentPulls)
	start := time.Now()
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = pull(ctx, ref)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, 0, 0, err
	}
	built, err := srv.metric("kix_image_layers_built_total")
	if err != nil {
		return 0, 0, 0, err
	}
	reused, err := srv.metric("kix_image_layers_reused_total")
	if err != nil {
		return 0, 0, 0, err
	}
	return elapsed, int(built), int(reused), nil
}
