package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kix-project/kix/test/fixture"
)

const (
	fetchRuns      = 7
	loadRounds     = 5
	loadClients    = 32
	loadDuration   = 5 * time.Second
	narinfoGoalRPS = 1.0 // kix / nginx
	fetchGoal      = 2.0 // nix / kix
)

// benchCache compares, on the 200-path bench closure copied by Nix into a
// signed cache folder (zstd) and served by `kix cache --dir`:
//
//   - fetching the closure into an empty node store: kix csi's fetch path
//     (`kix csi fetch`) against `nix copy --from http://... --to
//     local?root=...` into a fresh store, both verifying signatures;
//   - narinfo requests per second of kix cache against nginx serving the
//     same folder as static files, under the same load: 32 keep-alive
//     clients GETting narinfos of the closure for 5 seconds each.
//
// The two contenders take turns, and the medians are compared.
func benchCache(ctx context.Context, cfg benchConfig) error {
	nginx, err := findNginx()
	if err != nil {
		return err
	}
	root, closureBytes, paths, err := benchClosure(ctx)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "kix-bench-cache-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	dir, public, err := nixCacheFolder(ctx, work, root)
	if err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	srv, err := startServer(ctx, "kix cache", addr, "/nix-cache-info", cfg.kix, "cache", "--dir", dir, "--listen", addr)
	if err != nil {
		return err
	}
	defer srv.stop()
	url := "http://" + addr

	fetch, err := alternate(fetchRuns, func(i int) error {
		_, err := run(ctx, cfg.kix, "csi", "fetch", "--state-dir", filepath.Join(work, fmt.Sprint("kix-", i)),
			"--substituter", url, "--trusted-public-key", public, root)
		if err != nil {
			return fmt.Errorf("kix csi fetch: %w", err)
		}
		return nil
	}, func(i int) error {
		if err := nixCopyFrom(ctx, work, i, url, public, root); err != nil {
			return fmt.Errorf("nix copy: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	kixFetch, nixFetch := median(fetch[0]), median(fetch[1])

	hashes, err := narinfoHashes(dir)
	if err != nil {
		return err
	}
	nginxURL, stopNginx, err := startNginx(ctx, nginx, work, dir)
	if err != nil {
		return err
	}
	defer stopNginx()
	var rps [2][]float64
	if _, err := alternate(loadRounds, func(int) error {
		r, err := narinfoLoad(ctx, url, hashes)
		if err != nil {
			return fmt.Errorf("load on kix cache: %w", err)
		}
		rps[0] = append(rps[0], r)
		return nil
	}, func(int) error {
		r, err := narinfoLoad(ctx, nginxURL, hashes)
		if err != nil {
			return fmt.Errorf("load on nginx: %w", err)
		}
		rps[1] = append(rps[1], r)
		return nil
	}); err != nil {
		return err
	}
	kixRPS, nginxRPS := median(rps[0]), median(rps[1])

	fetchRatio, rpsRatio := nixFetch.Seconds()/kixFetch.Seconds(), kixRPS/nginxRPS
	fmt.Printf("\ncache: closure of %s\n", root)
	fmt.Printf("  %d store paths, %.1f MiB of NARs, in a signed zstd cache folder written by nix copy, served by kix cache --dir\n\n",
		paths, float64(closureBytes)/mib)
	fmt.Printf("  %-44s %-12s %-12s %s\n", "", "kix", "peer", "ratio (goal)")
	fmt.Printf("  %-44s %-12s %-12s %.2fx faster (≥ %.0fx)%s\n", fmt.Sprintf("fetch closure into an empty store, median of %d", fetchRuns),
		secs(kixFetch), secs(nixFetch)+" nix", fetchRatio, fetchGoal, missed(fetchRatio >= fetchGoal))
	fmt.Printf("  %-44s %-12s %-12s %.2f (≥ %.1f)%s\n", fmt.Sprintf("narinfo GETs/s, %d clients, median of %d", loadClients, loadRounds),
		fmt.Sprintf("%.0f/s", kixRPS), fmt.Sprintf("%.0f/s nginx", nginxRPS), rpsRatio, narinfoGoalRPS, missed(rpsRatio >= narinfoGoalRPS))
	return nil
}

func missed(ok bool) string {
	if ok {
		return ""
	}
	return "  GOAL MISSED"
}

func findNginx() (string, error) {
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path, nil
		}
	}
	return "", errors.New("the cache benchmark needs nginx (make tools installs it)")
}

// nixCacheFolder has Nix copy the closure of root into a new cache folder,
// zstd-compressed and signed with a new key, and returns the folder and the
// public key.
func nixCacheFolder(ctx context.Context, work, root string) (string, string, error) {
	secret, public := filepath.Join(work, "key.sec"), filepath.Join(work, "key.pub")
	if _, err := run(ctx, "nix-store", "--generate-binary-cache-key", "bench-cache-1", secret, public); err != nil {
		return "", "", err
	}
	dir := filepath.Join(work, "cache")
	to := fmt.Sprintf("file://%s?compression=zstd&secret-key=%s", dir, secret)
	if _, err := run(ctx, "nix", "--extra-experimental-features", "nix-command", "copy", "--to", to, root); err != nil {
		return "", "", err
	}
	key, err := os.ReadFile(public)
	return dir, strings.TrimSpace(string(key)), err
}

// nixCopyFrom has Nix copy root's closure from the cache into a fresh store,
// with its own narinfo cache.
func nixCopyFrom(ctx context.Context, work string, i int, url, public, root string) error {
	cmd := exec.CommandContext(ctx, "nix", "--extra-experimental-features", "nix-command", "copy",
		"--from", url, "--to", "local?root="+filepath.Join(work, fmt.Sprint("nix-", i)),
		"--option", "trusted-public-keys", public, root)
	cmd.Env = append(fixture.Env(), "XDG_CACHE_HOME="+filepath.Join(work, fmt.Sprint("xdg-", i)))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// alternate runs a and b n times each, taking turns so that neither
// gets the machine in a better state (a page cache written back, a warmer
// CPU), and returns their times. The one that goes first changes every
// round (a b, b a, a b, ...), so a machine that speeds up or slows down
// over the runs favours neither. Dirty pages are written back before each
// run, so no run pays for the one before it.
func alternate(n int, a, b func(i int) error) ([2][]time.Duration, error) {
	var times [2][]time.Duration
	for i := range n {
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		for _, j := range order {
			f := []func(int) error{a, b}[j]
			syscall.Sync()
			start := time.Now()
			if err := f(i); err != nil {
				return times, err
			}
			times[j] = append(times[j], time.Since(start))
		}
	}
	return times, nil
}

// median returns the middle value of xs.
func median[T time.Duration | float64](xs []T) T {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

func narinfoHashes(dir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.narinfo"))
	if err != nil || len(names) == 0 {
		return nil, fmt.Errorf("no narinfos in %s: %v", dir, err)
	}
	for i, n := range names {
		names[i] = strings.TrimSuffix(filepath.Base(n), ".narinfo")
	}
	return names, nil
}

// startNginx serves dir with nginx, configured as one would for a static
// binary cache, and returns its URL and how to stop it.
func startNginx(ctx context.Context, nginx, work, dir string) (string, func(), error) {
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	prefix := filepath.Join(work, "nginx")
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return "", nil, err
	}
	conf := filepath.Join(prefix, "nginx.conf")
	text := strings.NewReplacer("PREFIX", prefix, "ADDR", addr, "ROOT", dir).Replace(nginxConf)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return "", nil, err
	}
	srv, err := startServer(ctx, "nginx", addr, "/nix-cache-info", nginx, "-p", prefix, "-c", conf, "-e", filepath.Join(prefix, "error.log"))
	if err != nil {
		return "", nil, err
	}
	return "http://" + addr, srv.stop, nil
}

const nginxConf = `daemon off;
master_process on;
worker_processes auto;
user root;
pid PREFIX/nginx.pid;
error_log PREFIX/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  open_file_cache max=10000 inactive=60s;
  client_body_temp_path PREFIX/body;
  proxy_temp_path PREFIX/proxy;
  fastcgi_temp_path PREFIX/fastcgi;
  uwsgi_temp_path PREFIX/uwsgi;
  scgi_temp_path PREFIX/scgi;
  types { text/x-nix-narinfo narinfo; }
  server {
    listen ADDR;
    root ROOT;
    location / { try_files $uri =404; }
  }
}
`

// narinfoLoad has loadClients keep-alive clients GET narinfos, round robin,
// for loadDuration, and returns the successful requests per second.
func narinfoLoad(ctx context.Context, base string, hashes []string) (float64, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: loadClients, MaxConnsPerHost: loadClients}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, loadDuration)
	defer cancel()
	var ok atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, loadClients)
	start := time.Now()
	for c := range loadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; ctx.Err() == nil; i += loadClients {
				if err := getNarinfo(ctx, client, base+"/"+hashes[i%len(hashes)]+".narinfo"); err != nil {
					if ctx.Err() == nil {
						errs[c] = err
					}
					return
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return float64(ok.Load()) / time.Since(start).Seconds(), nil
}

func getNarinfo(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
