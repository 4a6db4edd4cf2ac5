// Package csi is kix's CSI node plugin (driver csi.kix.dev): a pod names
// store paths in an inline ephemeral volume, and the node mounts their
// closure read-only, so the container image can be empty and pods on a
// node share one copy of each store path (and its page cache).
//
// # Volumes
//
// A volume's attributes name store paths, for every system or per Nix
// system; the node takes the ones for its own system (Options.System):
//
//	volumes:
//	- name: nix
//	  csi:
//	    driver: csi.kix.dev
//	    volumeAttributes:
//	      x86_64-linux: /nix/store/y2zs...-hello-2.12.1
//	      aarch64-linux: /nix/store/a8f1...-hello-2.12.1
//	      # or, for any system:  storePath: /nix/store/...
//	      # several paths:       storePaths: "/nix/store/... /nix/store/..."
//
// Mounted at /nix, the volume holds store/<hash>-<name> for exactly the
// closure of those paths, and `command: [/nix/store/y2zs...-hello-2.12.1/bin/hello]`
// runs from a scratch image.
//
// # The node's folder (Options.StateDir)
//
//	store/<hash>-<name>                      verified store paths, shared by all volumes
//	volumes/<volume>/volume.json             the volume's store paths and closure
//	volumes/<volume>/nix/store/<hash>-<name> the view: hard links into store/
//	tmp/                                     fetches and views being made
//
// NodePublishVolume, for volume V at target T, naming hello:
//
//  1. The attributes are checked: InvalidArgument if malformed,
//     FailedPrecondition if they name paths for other systems only.
//  2. If V is already published at T, nothing is done (idempotent).
//  3. The closure is read from the substituters' narinfos, each signature
//     checked against the trusted keys. Every path not yet in store/ is
//     downloaded once, whichever volumes ask for it at the same time; its
//     NAR is unpacked into tmp/ while it streams, checked against the
//     signed NAR hash and size, and only then renamed into store/. A path
//     that fails a check never appears there.
//  4. The view is made in tmp/ — directories recreated, regular files hard
//     linked to store/ (no second copy: both views of two pods are the
//     same inodes), symlinks recreated — with volume.json, and renamed into
//     volumes/V.
//  5. volumes/V/nix is bind-mounted at T, then remounted read-only (a bind
//     mount takes its flags only on a remount, so it is two steps).
//
// NodeUnpublishVolume unmounts T, removes it, removes the view if nothing
// else mounts it, and asks for a garbage collection: store paths that no
// volume's closure holds are deleted, so the space is freed once the last
// pod using them is gone. Views left unmounted and whatever tmp/ holds (a
// crash mid-publish) are removed by the same collection, which also runs at
// start.
//
// Errors are gRPC statuses the kubelet shows in the pod's events:
//
//	InvalidArgument     a malformed attribute, a missing field, a block volume
//	FailedPrecondition  the volume names store paths for other systems only
//	NotFound            no substituter has a path of the closure
//	PermissionDenied    a narinfo is not signed by a trusted key
//	DataLoss            a NAR does not match its signed hash or size
//	Unavailable         no substituter could be reached
//	AlreadyExists       the volume is published with other store paths
//	Internal            anything else (disk full, mount failed)
//
// # Registration
//
// The plugin registers itself with the kubelet (no node-driver-registrar
// sidecar): it serves the kubelet's plugin registration API on
// <kubelet dir>/plugins_registry/csi.kix.dev-reg.sock, answering GetInfo
// with its CSI endpoint. The cluster also needs the CSIDriver object with
// volumeLifecycleModes [Ephemeral]; deploy/csi.nix has it, with the
// DaemonSet.
package csi
