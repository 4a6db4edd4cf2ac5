package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/kix-project/kix/internal/nix"
)

const (
	sbomPaths = 1000 // blobs in the synthetic closure
	sbomRuns  = 5    // kix sbom runs; the median counts
	syftRuns  = 3
	sbomGoal  = time.Second
)

// benchSBOM times kix sbom on a synthetic closure of 1,000 small store
// paths and runs syft (a dir: scan of a folder holding the same closure)
// beside it, counting the store paths each finds.
func benchSBOM(ctx context.Context, cfg benchConfig) error {
	root, closure, err := buildClosure(ctx, "--arg", "count", fmt.Sprint(sbomPaths), "--arg", "kib", "4")
	if err != nil {
		return err
	}

	kixTime, kixFound, err := timeKixSBOM(ctx, cfg.kix, root)
	if err != nil {
		return err
	}
	fmt.Printf("\nsbom: CycloneDX SBOM of %s\n", root)
	fmt.Printf("  closure: %d store paths (nix-store -qR)\n\n", len(closure))
	fmt.Printf("  %-36s %10s %14s\n", "", "time", "store paths")
	fmt.Printf("  %-36s %9.3fs %14d\n", fmt.Sprintf("kix sbom (median of %d)", sbomRuns), kixTime.Seconds(), kixFound)

	if cfg.syft == "" {
		fmt.Println("  syft: skipped (pass -syft, as `make bench` does)")
	} else {
		syftTime, syftFound, err := timeSyft(ctx, cfg.syft, closure)
		if err != nil {
			return err
		}
		fmt.Printf("  %-36s %9.3fs %14d\n", fmt.Sprintf("syft dir: (median of %d)", syftRuns), syftTime.Seconds(), syftFound)
		fmt.Printf("\n  ratio kix/syft: %.3f\n", kixTime.Seconds()/syftTime.Seconds())
	}
	fmt.Printf("  goal: kix sbom under %s%s\n", sbomGoal, missed(kixTime < sbomGoal))
	if kixFound != len(closure) {
		return fmt.Errorf("kix sbom listed %d store paths, the closure has %d", kixFound, len(closure))
	}
	return nil
}

// timeKixSBOM runs kix sbom several times and returns the median time and
// how many components the document lists.
func timeKixSBOM(ctx context.Context, kix, root string) (time.Duration, int, error) {
	var times []time.Duration
	var doc string
	for range sbomRuns {
		start := time.Now()
		out, err := run(ctx, kix, "sbom", root)
		if err != nil {
			return 0, 0, err
		}
		times = append(times, time.Since(start))
		doc = out
	}
	var bom struct {
		Components []struct {
			BOMRef string `json:"bom-ref"`
		} `json:"components"`
	}
	if err := json.Unmarshal([]byte(doc), &bom); err != nil {
		return 0, 0, fmt.Errorf("kix sbom output: %w", err)
	}
	return median(times), len(bom.Components), nil
}

// timeSyft copies the closure into a folder (DIR/nix/store/...) and scans
// it with syft, offline; it returns the median time and how many distinct
// store paths syft's packages are located in.
func timeSyft(ctx context.Context, syft string, closure []*nix.PathInfo) (time.Duration, int, error) {
	dir, err := os.MkdirTemp("", "kix-bench-sbom-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	store := filepath.Join(dir, "nix", "store")
	if err := os.MkdirAll(store, 0o755); err != nil {
		return 0, 0, err
	}
	argv := []string{"cp", "-a"}
	for _, info := range closure {
		argv = append(argv, info.Path)
	}
	if _, err := run(ctx, append(argv, store)...); err != nil {
		return 0, 0, err
	}
	var times []time.Duration
	var out []byte
	for range syftRuns {
		cmd := exec.CommandContext(ctx, syft, "scan", "dir:"+dir, "-o", "syft-json", "-q")
		cmd.Env = append(os.Environ(), "SYFT_CHECK_FOR_APP_UPDATE=false")
		start := time.Now()
		out, err = cmd.Output()
		if err != nil {
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				err = fmt.Errorf("%w: %s", err, exit.Stderr)
			}
			return 0, 0, fmt.Errorf("syft: %w", err)
		}
		times = append(times, time.Since(start))
	}
	found, err := syftStorePaths(out)
	return median(times), found, err
}

// syftStorePaths counts the store paths syft's packages were found in.
func syftStorePaths(doc []byte) (int, error) {
	var result struct {
		Artifacts []struct {
			Locations []struct {
				Path string `json:"path"`
			} `json:"locations"`
		} `json:"artifacts"`
	}
	if err := json.Unmarshal(doc, &result); err != nil {
		return 0, fmt.Errorf("syft output: %w", err)
	}
	paths := map[string]bool{}
	for _, a := range result.Artifacts {
		for _, l := range a.Locations {
			if sp, _, err := nix.SplitStorePath(l.Path); err == nil {
				paths[sp] = true
			}
		}
	}
	return len(paths), nil
}
