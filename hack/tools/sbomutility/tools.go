//go:build tools

// Package tools pins sbom-utility for hack/go-tool.sh.
package tools

import _ "github.com/CycloneDX/sbom-utility"
