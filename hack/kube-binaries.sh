#!/usr/bin/env bash
# Builds the upstream Kubernetes binaries the test cluster runs
# (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl)
# from the release pinned in hack/tools/kubernetes/go.mod, through the Go
# module proxy, into a per-user cache keyed by version:
#
#   ${KIX_KUBE_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/kix/kubernetes/<version>/bin}
#
# Idempotent: does nothing when the binaries for that version are there.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
module="$root/hack/tools/kubernetes"
version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$module/go.mod")
[ -n "$version" ] || { echo "kube-binaries: no k8s.io/kubernetes version in $module/go.mod" >&2; exit 1; }
dest=${KIX_KUBE_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/kix/kubernetes/$version/bin}
commands=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

have() {
	for c in "${commands[@]}"; do [ -x "$dest/$c" ] || return 1; done
	"$dest/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes $version"
}

mkdir -p "$(dirname "$dest")"
exec 9>"$dest.lock"
flock 9 # one build at a time; a second caller waits and then finds it done
if have; then
	echo "kube-binaries: Kubernetes $version in $dest"
	exit 0
fi

IFS=. read -r major minor _ <<<"${version#v}"
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "kube-binaries: building Kubernetes $version from source (about 6 minutes on 2 cores the first time)"
start=$(date +%s)
(
	cd "$module"
	GONOSUMDB=k8s.io GOFLAGS=-mod=readonly go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
		$(printf 'k8s.io/kubernetes/cmd/%s ' "${commands[@]}")
)
rm -rf "$dest"
mv "$tmp" "$dest"
echo "kube-binaries: built in $(($(date +%s) - start))s into $dest"
