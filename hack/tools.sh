#!/usr/bin/env bash
# Installs everything kix's tests and demo use, idempotently:
#   - Debian packages: Nix, etcd, containerd, runc, CNI plugins, busybox,
#     and the registry clients the tests pull with (skopeo, umoci);
#   - Kubernetes binaries built from upstream source (hack/kube-binaries.sh).
# Nix is configured by hack/nix/nix.conf (NIX_CONF_DIR), not /etc/nix.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
packages=(
	nix-bin etcd-server containerd runc containernetworking-plugins
	busybox-static iproute2 iptables skopeo umoci nginx wrk e2fsprogs
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "tools: need root to install: ${missing[*]}" >&2
		exit 1
	fi
	echo "tools: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$root/hack/kube-binaries.sh"
