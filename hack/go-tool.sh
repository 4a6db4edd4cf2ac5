#!/usr/bin/env bash
# go-tool.sh MODULE_DIR PACKAGE: builds a Go command pinned by a small tools
# module under hack/tools/ into the per-user cache (keyed by the module's
# go.sum, so a version bump rebuilds) and prints the binary's path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(cd "$root/$1" && pwd)
pkg=$2
name=$(basename "$pkg")
key=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-12)
dest=${XDG_CACHE_HOME:-$HOME/.cache}/kix/tools/$name-$key/$name
if [ ! -x "$dest" ]; then
	mkdir -p "$(dirname "$dest")"
	(cd "$dir" && GOFLAGS=-mod=readonly go build -trimpath -o "$dest.tmp" "$pkg")
	mv "$dest.tmp" "$dest"
fi
echo "$dest"
