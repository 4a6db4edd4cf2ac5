// Package nix is kix's view of a Nix store: store paths, their metadata
// (NAR hash, size, references), closures, and their files. It is the only
// package that runs the nix command.
//
// A Store answers two questions about a store path: what is known about it
// (PathInfo) and what it holds (NAR, a serialisation in Nix's archive format
// whose hash the PathInfo records). Two stores implement it:
//
//   - LocalStore, the machine's own /nix/store, queried with the nix command
//     (Nix 2.8 or newer, no daemon required) and read straight from disk;
//   - BinaryCache, a Nix binary cache over HTTP (what Nix calls a
//     substituter), which needs no Nix on the machine at all. It checks
//     narinfo signatures against trusted keys and NAR hashes before it
//     returns anything.
//
// Everything built on a Store (images, SBOMs, CSI mounts) sees the same
// closure and the same bytes whichever store it reads.
package nix
