package csi

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

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
	if err := d.mounter.Mount(view, target, "", viewMountOptions); err != nil {
		// A failed second step leaves a writable bind mount behind: it
		// must not stay for a retry to take as published.
		if uerr := d.unmountAll(target); uerr != nil {
			err = errors.Join(err, uerr)
		}
		os.Remove(target)
		return fmt.Errorf("mounting the view at %s: %w", target, err)
	}
	return nil
}

var viewMountOptions = []string{"bind", "ro", "nosuid", "nodev"}

// sealed reports whether a mount has the options a view is mounted with.
func sealed(m mount.MountInfo) bool {
	for _, o := range viewMountOptions[1:] {
		if !slices.Contains(m.MountOptions, o) {
			return false
		}
	}
	return true
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
