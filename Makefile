# kix — the two commands: `make demo` and `make test`. Both install what they
# need first (hack/tools.sh): Debian packages and Kubernetes built from source
# into ~/.cache/kix.

SHELL := /bin/bash
GO ?= go

# Nix runs with the repository's configuration (no daemon, no substituters).
export NIX_CONF_DIR := $(CURDIR)/hack/nix
# k8s.io modules are missing from the checksum database; go.sum pins them.
export GONOSUMDB := k8s.io

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse --verify -q HEAD || echo unknown)
LDFLAGS := -X github.com/kix-project/kix/internal/version.Version=$(VERSION) \
	-X github.com/kix-project/kix/internal/version.Commit=$(COMMIT)

.PHONY: all build tools generate check test demo bench cluster clean

all: build

## build: the kix binary, into bin/kix
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/kix ./cmd/kix

## tools: install what tests and the demo run (idempotent)
tools:
	@hack/tools.sh

## generate: deep-copy code, CRDs and RBAC from the API types and markers
generate:
	@hack/generate.sh

## check: generated files up to date, formatting, go vet and staticcheck
check:
	@hack/generate.sh --check
	@unformatted=$$(gofmt -l $$($(GO) list -f '{{.Dir}}' ./...)); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:" $$unformatted >&2; exit 1; fi
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod or go.sum is not tidy: run go mod tidy" >&2; exit 1; }
	$(GO) vet ./...
	$$(hack/go-tool.sh hack/tools/lint honnef.co/go/tools/cmd/staticcheck) ./...

## test: every test, with the race detector, against real Nix and a real cluster
test: tools check
	$(GO) test -race -count=1 -timeout 60m ./...

## demo: kix's main job end to end on a local cluster started for it
demo: tools build
	$(GO) run ./test/demo

## bench: kix side by side with the peers it replaces, on the same input
DISTRIBUTION = hack/go-tool.sh hack/tools/distribution github.com/distribution/distribution/v3/cmd/registry
SYFT = hack/go-tool.sh hack/tools/syft github.com/anchore/syft/cmd/syft
bench: tools build
	$(GO) run ./test/bench -kix bin/kix -distribution $$($(DISTRIBUTION)) -syft $$($(SYFT)) $(BENCH)

## cluster: a local cluster with a node, until Ctrl-C (for trying kix by hand)
cluster: tools
	$(GO) run ./test/cmd/kix-cluster

clean:
	rm -rf bin
