// Package image turns store paths into OCI images: the runtime closure of
// one or more roots becomes a root file system holding exactly those paths
// under /nix/store, split into layers, with a config and a manifest (or an
// index, for several systems). Images are deterministic: the same closure
// gives the same layer, config and manifest digests on any machine, from
// the local store or from a binary cache, with a cold or a warm cache.
//
// # Inputs
//
// A store path is served as one of three things:
//
//   - a package: its closure, with PATH=<path>/bin and, if <path>/bin holds
//     exactly one program, that program as the entrypoint;
//   - an image spec: a JSON file written by kix's Nix library (imageSpec),
//     naming per-system roots and the image configuration; one system gives
//     an image, several give an index;
//   - an image archive: a docker-archive or OCI archive (.tar or .tar.gz),
//     as nixpkgs' dockerTools builds, served as the image it contains.
//
// # Layering
//
// Container runtimes stack layers with overlayfs, which allows about 128;
// a closure can hold thousands of paths. Group assigns every path to exactly
// one layer under a budget (default 100) so that what many images share
// lands in layers of its own and is downloaded once per node:
//
//  1. Popularity: for each path, count the paths in the closure that depend
//     on it, directly or not. A C library everything links against is
//     popular; the application at the root has popularity 0.
//  2. Weight: (popularity + 1) × NAR size — roughly how many bytes giving the
//     path its own layer saves across images that share it. Big paths and
//     widely shared paths both weigh a lot.
//  3. The budget−1 heaviest paths get a layer each; all the rest share the
//     last layer. Ties break on the store path, so the result depends only
//     on the closure.
//
// Layers are ordered heaviest first, the shared remainder last.
//
// A worked example with a budget of 3, for this closure (NAR sizes in MiB,
// arrows are references):
//
//	app (1) ──▶ libfoo (2) ──▶ glibc (30)
//	   └──────▶ tzdata (4)
//
//	path     dependants           popularity  weight
//	glibc    app, libfoo          2           3 × 30 = 90
//	tzdata   app                  1           2 × 4  =  8
//	libfoo   app                  1           2 × 2  =  4
//	app      —                    0           1 × 1  =  1
//
// gives three layers: [glibc] [tzdata] [app libfoo]. With a budget of 4 or
// more, every path has a layer of its own; with a budget of 1, one layer
// holds everything.
//
// # Layer contents
//
// A layer is a tar stream: the directories nix/ and nix/store/, then each
// of its store paths (sorted) in NAR order, with the permissions Nix gives
// store files (0444, or 0555 for executables and directories), owner 0:0
// and modification time 1 (as in the store). It is compressed with gzip
// (parallel, by default), zstd, or not at all.
//
// # Caching
//
// Layers and the other blobs live in a content-addressed BlobCache on disk,
// bounded in size, evicting the least recently used. A layer's cache key is
// its store paths with their NAR hashes and the compression, so a layer is
// built once however many images and requests need it; concurrent requests
// for the same layer wait for the one build. A Builder remembers the
// artifacts it assembled, and assembles one again when the cache has
// evicted any of its blobs, rebuilding only the layers that are gone.
package image
