package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sweep removes every trace of a harness from the machine, whatever state it
// was left in: processes that belong to it (by command line or by a root
// file system under dir), mounts under dir, the bridge interface named in
// dir/bridge, and dir itself. It is the last step of every teardown and also
// cleans up after a supervisor that was killed outright. With keep, the
// folder itself stays (for reading logs).
func sweep(dir string, keep bool) error {
	dir = filepath.Clean(dir)
	var errs []error
	for i := 0; i < 10; i++ {
		if killed := killProcessesUnder(dir); killed == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := unmountUnder(dir); err != nil {
		errs = append(errs, err)
	}
	if name, err := os.ReadFile(filepath.Join(dir, "bridge")); err == nil {
		if err := deleteLink(strings.TrimSpace(string(name))); err != nil {
			errs = append(errs, err)
		}
	}
	releaseLease(dir)
	if !keep {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// Leftovers lists what remains on this machine of a cluster that was
// stopped: processes, mounts, its network interface and its folder. It is
// empty when the teardown was complete.
func Leftovers(info Info) []string {
	var left []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && processBelongsTo(pid, info.Dir) {
			cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			left = append(left, fmt.Sprintf("process %d: %s", pid, strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")))
		}
	}
	mounts, err := mountsUnder(info.Dir)
	if err != nil {
		left = append(left, "reading mounts: "+err.Error())
	}
	for _, m := range mounts {
		left = append(left, "mount "+m)
	}
	if info.Bridge != "" {
		if _, err := net.InterfaceByName(info.Bridge); err == nil {
			left = append(left, "interface "+info.Bridge)
		}
	}
	if _, err := os.Stat(info.Dir); !errors.Is(err, os.ErrNotExist) {
		left = append(left, "folder "+info.Dir)
	}
	return left
}

// killProcessesUnder SIGKILLs processes whose command line mentions dir or
// whose root file system lies under it (containers), and returns how many
// it found.
func killProcessesUnder(dir string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self := os.Getpid()
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if processBelongsTo(pid, dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			n++
		}
	}
	return n
}

func processBelongsTo(pid int, dir string) bool {
	proc := "/proc/" + strconv.Itoa(pid)
	if cmdline, err := os.ReadFile(proc + "/cmdline"); err == nil {
		if strings.Contains(string(cmdline), dir+"/") {
			return true
		}
	}
	if root, err := os.Readlink(proc + "/root"); err == nil && within(root, dir) {
		return true
	}
	return false
}

func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if within(mp, dir) {
			mounts = append(mounts, mp)
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	return mounts, sc.Err()
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountUnder detaches every mount at or below dir. Mounts can be stacked
// (the kubelet bind-mounts its root onto itself), so it repeats until none
// are left.
func unmountUnder(dir string) error {
	for i := 0; i < 10; i++ {
		mounts, err := mountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			return nil
		}
		for _, m := range mounts {
			_ = syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
	mounts, _ := mountsUnder(dir)
	if len(mounts) > 0 {
		return fmt.Errorf("mounts left under %s: %v", dir, mounts)
	}
	return nil
}

// deleteLink removes a network interface if it exists.
func deleteLink(name string) error {
	if name == "" {
		return nil
	}
	if _, err := net.InterfaceByName(name); err != nil {
		return nil // already gone
	}
	out, err := exec.Command("ip", "link", "delete", name).CombinedOutput()
	if err != nil {
		if _, stillThere := net.InterfaceByName(name); stillThere != nil {
			return nil
		}
		return fmt.Errorf("deleting interface %s: %v: %s", name, err, out)
	}
	return nil
}

// Every harness folder is created under os.TempDir() with this prefix and
// holds the supervisor's identity, so a later harness can tell a live
// harness from the remains of one whose supervisor was killed.
const (
	dirPrefix   = "kix-cluster-"
	ownerFile   = "supervisor.pid"
	leaseFolder = "kix-cluster-leases"
)

// processIdentity is a pid with its start time, which tells a live process
// apart from a later one that reused its pid.
func processIdentity(pid int) (string, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	// The command name (field 2) may hold spaces; fields after ')' are plain.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return "", fmt.Errorf("short /proc/%d/stat", pid)
	}
	return strconv.Itoa(pid) + " " + fields[19], nil // field 22: starttime
}

func writeOwner(dir string) error {
	id, err := processIdentity(os.Getpid())
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ownerFile), []byte(id+"\n"), 0o644)
}

// ownerAlive reports whether the supervisor that owns dir still runs.
func ownerAlive(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return false
	}
	want := strings.TrimSpace(string(data))
	pid, err := strconv.Atoi(strings.Fields(want + " x")[0])
	if err != nil {
		return false
	}
	got, err := processIdentity(pid)
	return err == nil && got == want
}

// sweepStale cleans up after harnesses whose supervisor died without
// tearing down. Folders that have no owner file yet belong to a harness that
// is still being created and are left alone unless they are old.
func sweepStale() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range matches {
		if _, err := os.Stat(filepath.Join(dir, ownerFile)); err != nil {
			if fi, err := os.Stat(dir); err != nil || time.Since(fi.ModTime()) < time.Hour {
				continue
			}
		} else if ownerAlive(dir) {
			continue
		}
		_ = sweep(dir, false)
	}
	leases, _ := filepath.Glob(filepath.Join(os.TempDir(), leaseFolder, "*"))
	for _, l := range leases {
		owner, err := os.ReadFile(l)
		if err == nil {
			if _, err := os.Stat(strings.TrimSpace(string(owner))); err == nil {
				continue
			}
		}
		_ = os.Remove(l)
	}
}
