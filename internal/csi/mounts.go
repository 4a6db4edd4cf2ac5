package csi

import (
	"fmt"
	"os"
	"path/filepath"

	mount "k8s.io/mount-utils"
)

// mountInfoFile lists this mount namespace's mounts.
const mountInfoFile = "/proc/self/mountinfo"

// mounts reads the mount table.
func mounts() ([]mount.MountInfo, error) {
	return mount.ParseMountInfo(mountInfoFile)
}

// mountsAt returns the mounts whose mount point is target.
func mountsAt(table []mount.MountInfo, target string) []mount.MountInfo {
	var out []mount.MountInfo
	for _, m := range table {
		if m.MountPoint == target {
			out = append(out, m)
		}
	}
	return out
}

// isViewMount reports whether m is a bind mount of volume folder dir's
// view. A bind mount's root is the view's path within its file system,
// which ends with volumes/<volume>/nix whatever the file system.
func isViewMount(m mount.MountInfo, volumeDir string) bool {
	return hasSuffixPath(m.Root, filepath.Join(filepath.Base(filepath.Dir(volumeDir)), filepath.Base(volumeDir), "nix"))
}

// viewMounted reports whether a volume's view is mounted anywhere.
func viewMounted(table []mount.MountInfo, volumeDir string) bool {
	for _, m := range table {
		if isViewMount(m, volumeDir) {
			return true
		}
	}
	return false
}

// bindReadOnly mounts view at target, read-only, without devices or setuid.
// mount-utils makes it in two steps (bind, then remount with the flags), as
// Linux wants.
func (d *Driver) bindReadOnly(view, target string) error {
	if err := os.MkdirAll(target, 0o750); err != nil {
		return err
	}
	if err := d.mounter.Mount(view, target, "", []string{"bind", "ro", "nosuid", "nodev"}); err != nil {
		os.Remove(target)
		return fmt.Errorf("mounting the view at %s: %w", target, err)
	}
	return nil
}

// unmountAll unmounts everything mounted at target.
func (d *Driver) unmountAll(target string) error {
	for {
		table, err := mounts()
		if err != nil {
			return err
		}
		if len(mountsAt(table, target)) == 0 {
			return nil
		}
		if err := d.mounter.Unmount(target); err != nil {
			return fmt.Errorf("unmounting %s: %w", target, err)
		}
	}
}
