// Package nixlib embeds kix's Nix library (the .nix files beside this one)
// so that Go code shares its tables and can hand the library to Nix
// evaluations that need it.
package nixlib

import (
	"embed"
	"encoding/json"
	"sync"
)

// Files are the library's files: default.nix and what it imports.
//
//go:embed *.nix api-versions.json
var Files embed.FS

//go:embed api-versions.json
var apiVersionsJSON []byte

var apiVersions = sync.OnceValues(func() (map[string]string, error) {
	var m map[string]string
	err := json.Unmarshal(apiVersionsJSON, &m)
	return m, err
})

// APIVersion returns the apiVersion of a built-in Kubernetes kind: what
// objects written as namespace.Kind.name get when they name none.
func APIVersion(kind string) (string, bool) {
	m, err := apiVersions()
	if err != nil {
		return "", false
	}
	v, ok := m[kind]
	return v, ok
}
