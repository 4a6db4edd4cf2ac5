//go:build tools

// Package tools pins controller-gen for hack/go-tool.sh.
package tools

import _ "sigs.k8s.io/controller-tools/cmd/controller-gen"
