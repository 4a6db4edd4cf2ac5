//go:build tools

// Package tools pins the distribution registry for hack/go-tool.sh.
package tools

import _ "github.com/distribution/distribution/v3/cmd/registry"
