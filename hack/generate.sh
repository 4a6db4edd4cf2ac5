#!/usr/bin/env bash
# generate.sh [--check]: writes the API types' deep-copy code, the CRDs
# (config/crd) and the controller's ClusterRole (config/rbac) with
# controller-gen. With --check, fails if that changed anything: the
# generated files were not up to date with the types and markers.
set -euo pipefail
cd "$(dirname "$0")/.."
cg=$(hack/go-tool.sh hack/tools/controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen)
generated=(api/v1alpha1/zz_generated.deepcopy.go config)
if [ "${1:-}" = --check ]; then
	before=$(mktemp -d)
	trap 'rm -rf "$before"' EXIT
	cp -r --parents "${generated[@]}" "$before"
fi
"$cg" object paths=./api/...
"$cg" crd paths=./api/... output:crd:artifacts:config=config/crd
"$cg" rbac:roleName=kix-controller paths=./internal/controller/... output:rbac:artifacts:config=config/rbac
if [ "${1:-}" = --check ]; then
	for f in "${generated[@]}"; do
		if ! diff -r "$before/$f" "$f" >/dev/null; then
			echo "generated files were stale ($f): run make generate and commit the result" >&2
			exit 1
		fi
	done
fi
