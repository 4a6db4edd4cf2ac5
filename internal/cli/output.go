package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// outputFormat is the value of a command's -o flag.
type outputFormat string

const (
	outputText outputFormat = ""
	outputJSON outputFormat = "json"
	outputYAML outputFormat = "yaml"
)

func parseOutputFormat(s string) (outputFormat, error) {
	switch f := outputFormat(s); f {
	case outputText, outputJSON, outputYAML:
		return f, nil
	}
	return "", usageErrorf("unknown output format %q (want json or yaml)", s)
}

// writeStructured prints v as indented JSON or as YAML.
func writeStructured(w io.Writer, format outputFormat, v any) error {
	switch format {
	case outputJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case outputYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("writeStructured: format %q is not structured", format)
}

// parseBytes reads a size such as 1048576, 500Mi or 10Gi.
func parseBytes(s string) (int64, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", s, err)
	}
	if q.Sign() <= 0 {
		return 0, fmt.Errorf("size %q must be positive", s)
	}
	return q.Value(), nil
}
