//go:build tools

// Package tools pins staticcheck for hack/go-tool.sh.
package tools

import _ "honnef.co/go/tools/cmd/staticcheck"
