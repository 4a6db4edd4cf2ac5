package csi

import "golang.org/x/sys/unix"

func mountUnmount(p string) error { return unix.Unmount(p, unix.MNT_DETACH) }
