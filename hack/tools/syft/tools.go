//go:build tools

// Package tools pins syft for hack/go-tool.sh.
package tools

import _ "github.com/anchore/syft/cmd/syft"
