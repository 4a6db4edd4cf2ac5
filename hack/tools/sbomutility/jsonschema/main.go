// Command jsonschema validates JSON documents against a JSON Schema (drafts
// 4 to 7) with gojsonschema, the library sbom-utility validates with. kix's
// tests use it for documents sbom-utility does not know, such as SARIF.
//
//	jsonschema SCHEMA FILE...
//
// Exit status: 0 every file is valid, 2 some file is not (its errors are
// printed), 1 the schema or a file could not be read.
//
// hack/go-tool.sh rebuilds tools when go.mod or go.sum change; after editing
// this file, remove the cached binary (~/.cache/kix/tools/jsonschema-*).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/xeipuuv/gojsonschema"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: jsonschema SCHEMA FILE...")
		os.Exit(1)
	}
	schema, err := gojsonschema.NewSchema(gojsonschema.NewReferenceLoader(fileURL(os.Args[1])))
	if err != nil {
		fmt.Fprintf(os.Stderr, "loading schema %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	status := 0
	for _, file := range os.Args[2:] {
		result, err := schema.Validate(gojsonschema.NewReferenceLoader(fileURL(file)))
		if err != nil {
			fmt.Fprintf(os.Stderr, "reading %s: %v\n", file, err)
			os.Exit(1)
		}
		if result.Valid() {
			continue
		}
		status = 2
		for _, e := range result.Errors() {
			fmt.Printf("%s: %s\n", file, e)
		}
	}
	os.Exit(status)
}

func fileURL(name string) string {
	abs, err := filepath.Abs(name)
	if err != nil {
		abs = name
	}
	return "file://" + abs
}
