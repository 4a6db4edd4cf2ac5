package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
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
// signed cache folder (zstd):
//
//   - fetching the closure into an empty node store: kix csi's fetch path
//     (`kix csi fetch`) against `nix copy --from http://... --to
//     local?root=...` into a fresh store, both verifying signatures, both
//     from the folder served by `kix cache --dir`;
//   - narinfo requests per second of kix cache against nginx serving the
//     same folder as static files, under the same load: wrk GETting
//     narinfos of the closure over 32 keep-alive connections for 5 seconds.
//     The server runs on CPU 0 and wrk on CPU 1, so each server has one
//     core of its own and the load generator never takes from it.
//
// The two contenders take turns, and the medians are compared.
func benchCache(ctx context.Context, cfg benchConfig) error {
	var tools cacheTools
	var errs []error
	for _, t := range []struct {
		path  *string
		names []string
	}{
		{&tools.nginx, []string{"nginx", "/usr/sbin/nginx"}},
		{&tools.wrk, []string{"wrk"}},
		{&tools.taskset, []string{"taskset"}},
		{&tools.mkfs, []string{"mkfs.ext4", "/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"}},
		{&tools.losetup, []string{"losetup", "/usr/sbin/losetup", "/sbin/losetup"}},
	} {
		var err error
		*t.path, err = findTool(t.names...)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if runtime.NumCPU() < 2 {
		return errors.New("the cache benchmark needs 2 CPUs: one for the server, one for the load")
	}
	if os.Geteuid() != 0 {
		return errors.New("the cache benchmark mounts a filesystem image for the fetched stores: run it as root")
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
	kixFetch, nixFetch, err := benchFetch(ctx, cfg, tools, work, dir, public, root)
	if err != nil {
		return err
	}
	kixRPS, nginxRPS, err := benchNarinfos(ctx, cfg, tools, work, dir)
	if err != nil {
		return err
	}

	fetchRatio, rpsRatio := nixFetch.Seconds()/kixFetch.Seconds(), kixRPS/nginxRPS
	fmt.Printf("\ncache: closure of %s\n", root)
	fmt.Printf("  %d store paths, %.1f MiB of NARs, in a signed zstd cache folder written by nix copy, served by kix cache --dir\n\n",
		paths, float64(closureBytes)/mib)
	fmt.Printf("  %-56s %-12s %-12s %s\n", "", "kix", "peer", "ratio (goal)")
	fmt.Printf("  %-56s %-12s %-12s %.2fx faster (≥ %.0fx)%s\n", fmt.Sprintf("fetch closure into an empty store, median of %d", fetchRuns),
		secs(kixFetch), secs(nixFetch)+" nix", fetchRatio, fetchGoal, missed(fetchRatio >= fetchGoal))
	fmt.Printf("  %-56s %-12s %-12s %.2f (≥ %.1f)%s\n", fmt.Sprintf("narinfo GETs/s on one core, wrk, %d conns, median of %d", loadClients, loadRounds),
		fmt.Sprintf("%.0f/s", kixRPS), fmt.Sprintf("%.0f/s nginx", nginxRPS), rpsRatio, narinfoGoalRPS, missed(rpsRatio >= narinfoGoalRPS))
	return nil
}

// benchFetch times kix csi fetch and nix copy, taking turns, copying the
// closure of root from the cache folder dir served by kix cache, and
// returns their medians.
//
// Both write their stores to a new ext4 filesystem with a journal, as a
// node's disk has. Before each run, untimed, the last run's store is
// deleted and the cache folder is read through, so that every run starts
// from the same machine:
//   - Kept, the runs' stores would add 200 MiB of page cache each, and on
//     a virtual machine that hands unused memory back to its host, the
//     first write to such memory costs more than the copy itself: the
//     later runs would measure the host instead of the tools.
//   - Such a machine also pages out what was not touched for some seconds
//     (DAMON): the server would read some NARs from disk in one run and
//     none in the next. A cache in use is in memory.
func benchFetch(ctx context.Context, cfg benchConfig, tools cacheTools, work, dir, public, root string) (kix, nix time.Duration, err error) {
	stores, unmount, err := mountStores(ctx, tools, work)
	if err != nil {
		return 0, 0, err
	}
	defer unmount()
	addr, err := freeAddr()
	if err != nil {
		return 0, 0, err
	}
	srv, err := startServer(ctx, "kix cache", addr, "/nix-cache-info", cfg.kix, "cache", "--dir", dir, "--listen", addr)
	if err != nil {
		return 0, 0, err
	}
	defer srv.stop()
	url := "http://" + addr
	kixStore, nixStore := filepath.Join(stores, "kix"), filepath.Join(stores, "nix")
	prepare := func() error {
		return errors.Join(os.RemoveAll(kixStore), os.RemoveAll(nixStore), readAll(dir))
	}
	fetch, err := alternate(fetchRuns, prepare, func(int) error {
		_, err := run(ctx, cfg.kix, "csi", "fetch", "--state-dir", kixStore,
			"--substituter", url, "--trusted-public-key", public, root)
		if err != nil {
			return fmt.Errorf("kix csi fetch: %w", err)
		}
		return nil
	}, func(i int) error {
		if err := nixCopyFrom(ctx, work, i, url, public, root, nixStore); err != nil {
			return fmt.Errorf("nix copy: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return median(fetch[0]), median(fetch[1]), nil
}

// mountStores makes a new ext4 filesystem in an image file in work, mounts
// it, and returns where and how to unmount it. A filesystem of its own
// keeps the fetches off the machine's root filesystem, whatever it is and
// whatever was deleted there lately. The loop device does direct I/O, so
// what the stores write is cached once, by ext4, not a second time in the
// image file's pages.
func mountStores(ctx context.Context, tools cacheTools, work string) (string, func(), error) {
	img, mnt := filepath.Join(work, "stores.img"), filepath.Join(work, "stores")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		return "", nil, err
	}
	if err := os.Truncate(img, storesSize); err != nil {
		return "", nil, err
	}
	if _, err := run(ctx, tools.mkfs, "-q", "-F", img); err != nil {
		return "", nil, err
	}
	out, err := run(ctx, tools.losetup, "--find", "--show", "--direct-io=on", img)
	if err != nil {
		return "", nil, fmt.Errorf("the fetch benchmark needs a loop device (/dev/loop-control, CAP_SYS_ADMIN): %w", err)
	}
	dev := strings.TrimSpace(out)
	cleanup := context.WithoutCancel(ctx)
	detach := func() {
		if _, err := run(cleanup, tools.losetup, "--detach", dev); err != nil {
			fmt.Fprintf(os.Stderr, "bench: leaving %s attached: %v\n", dev, err)
		}
	}
	if _, err := run(ctx, "mount", dev, mnt); err != nil {
		detach()
		return "", nil, err
	}
	return mnt, func() {
		if _, err := run(cleanup, "umount", mnt); err != nil {
			fmt.Fprintf(os.Stderr, "bench: unmounting %s: %v; detaching it lazily\n", mnt, err)
			_, _ = run(cleanup, "umount", "--lazy", mnt)
		}
		detach()
	}, nil
}

// storesSize is the size of the stores' filesystem: room for one store
// of each tool, most of it never written (the image is sparse).
const storesSize = 4 << 30

// cacheTools are the programs the cache benchmark runs.
type cacheTools struct{ nginx, wrk, taskset, mkfs, losetup string }

// The narinfo load puts the server on one CPU and wrk on another.
const serverCPU, loadCPU = "0", "1"

// benchNarinfos measures narinfo requests per second of kix cache and of
// nginx, both serving the cache folder dir from one core, taking turns, and
// returns their medians.
func benchNarinfos(ctx context.Context, cfg benchConfig, tools cacheTools, work, dir string) (kix, nginx float64, err error) {
	hashes, err := narinfoHashes(dir)
	if err != nil {
		return 0, 0, err
	}
	script, err := wrkScript(work, hashes)
	if err != nil {
		return 0, 0, err
	}
	addr, err := freeAddr()
	if err != nil {
		return 0, 0, err
	}
	srv, err := startServer(ctx, "kix cache", addr, "/nix-cache-info",
		tools.taskset, "--cpu-list", serverCPU, cfg.kix, "cache", "--dir", dir, "--listen", addr)
	if err != nil {
		return 0, 0, err
	}
	defer srv.stop()
	nginxURL, stopNginx, err := startNginx(ctx, tools, work, dir)
	if err != nil {
		return 0, 0, err
	}
	defer stopNginx()
	var rps [2][]float64
	load := func(i int, name, url string) error {
		r, err := narinfoLoad(ctx, tools, script, url)
		if err != nil {
			return fmt.Errorf("load on %s: %w", name, err)
		}
		rps[i] = append(rps[i], r)
		return nil
	}
	if _, err := alternate(loadRounds, nil,
		func(int) error { return load(0, "kix cache", "http://"+addr) },
		func(int) error { return load(1, "nginx", nginxURL) }); err != nil {
		return 0, 0, err
	}
	return median(rps[0]), median(rps[1]), nil
}

func missed(ok bool) string {
	if ok {
		return ""
	}
	return "  GOAL MISSED"
}

// findTool looks a program up by its names, in order.
func findTool(names ...string) (string, error) {
	for _, p := range names {
		if path, err := exec.LookPath(p); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("the cache benchmark needs %s (make tools installs it)", names[0])
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

// nixCopyFrom has Nix copy root's closure from the cache into a fresh store
// with root store, with its own narinfo cache (run i's).
func nixCopyFrom(ctx context.Context, work string, i int, url, public, root, store string) error {
	cmd := exec.CommandContext(ctx, "nix", "--extra-experimental-features", "nix-command", "copy",
		"--from", url, "--to", "local?root="+store,
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
// over the runs favours neither.
// prepare, if not nil, runs before each run, untimed. Dirty pages are
// written back before each run too, so no run pays for the one before it.
func alternate(n int, prepare func() error, a, b func(i int) error) ([2][]time.Duration, error) {
	var times [2][]time.Duration
	for i := range n {
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		for _, j := range order {
			f := []func(int) error{a, b}[j]
			if prepare != nil {
				if err := prepare(); err != nil {
					return times, err
				}
			}
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

// readAll reads every file under dir, so that it is in the page cache.
func readAll(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(io.Discard, f)
		return err
	})
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

// startNginx serves dir with nginx on serverCPU, configured as one would
// for a static binary cache, and returns its URL and how to stop it. The
// configuration is nginx's fastest here for files of a few hundred bytes:
// one worker for its one core, open files cached, and sendfile off (one
// write per answer beats sendfile's header write, sendfile and two
// TCP_CORK calls by about 6% on this load).
func startNginx(ctx context.Context, tools cacheTools, work, dir string) (string, func(), error) {
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
	srv, err := startServer(ctx, "nginx", addr, "/nix-cache-info",
		tools.taskset, "--cpu-list", serverCPU, tools.nginx, "-p", prefix, "-c", conf, "-e", filepath.Join(prefix, "error.log"))
	if err != nil {
		return "", nil, err
	}
	return "http://" + addr, srv.stop, nil
}

const nginxConf = `daemon off;
master_process on;
worker_processes 1;
user root;
pid PREFIX/nginx.pid;
error_log PREFIX/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile off;
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

// narinfoLoad has wrk GET narinfos of the closure from base, round robin,
// over loadClients keep-alive connections from one thread for loadDuration,
// and returns the requests per second. wrk, an event-loop load generator
// in C, spends a few µs of CPU per request: the server, not the client, is
// what is measured. Any answer but 200, and any socket error, fails the run.
func narinfoLoad(ctx context.Context, tools cacheTools, script, base string) (float64, error) {
	out, err := run(ctx, tools.taskset, "--cpu-list", loadCPU, tools.wrk, "--threads", "1", "--connections", fmt.Sprint(loadClients),
		"--duration", fmt.Sprintf("%ds", int(loadDuration.Seconds())), "--script", script, base)
	if err != nil {
		return 0, err
	}
	// The script's done() prints one line: requests, microseconds, errors.
	for line := range strings.Lines(out) {
		var requests, micros, failed int64
		if _, err := fmt.Sscanf(line, "kix-bench %d %d %d", &requests, &micros, &failed); err != nil {
			continue
		}
		if failed > 0 || requests == 0 {
			return 0, fmt.Errorf("wrk on %s: %d of %d requests failed:\n%s", base, failed, requests, out)
		}
		return float64(requests) / (float64(micros) / 1e6), nil
	}
	return 0, fmt.Errorf("wrk on %s printed no summary:\n%s", base, out)
}

// wrkScript writes the Lua script that has wrk GET the narinfos of hashes,
// round robin, and print its summary in one line.
func wrkScript(work string, hashes []string) (string, error) {
	var b strings.Builder
	b.WriteString("local paths = {\n")
	for _, h := range hashes {
		fmt.Fprintf(&b, "  \"/%s.narinfo\",\n", h)
	}
	b.WriteString(`}
local requests, i = {}, 0
init = function()
  for k, p in ipairs(paths) do requests[k] = wrk.format("GET", p) end
end
request = function()
  i = i % #requests + 1
  return requests[i]
end
done = function(summary)
  local e = summary.errors
  io.write(string.format("kix-bench %d %d %d\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout))
end
`)
	name := filepath.Join(work, "narinfos.lua")
	return name, os.WriteFile(name, []byte(b.String()), 0o644)
}
