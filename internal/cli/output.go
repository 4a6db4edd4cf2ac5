package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// outputFormat is the value of a command's -o flag.
type outputFormat string

const (
	outputText outputFormat = "" // the command's own text form: a table, a diff
	outputJSON outputFormat = "json"
	outputYAML outputFormat = "yaml"
	// outputTable names the text form of commands that print a table.
	outputTable outputFormat = "table"
	outputSARIF outputFormat = "sarif"
)

// parseOutputFormat reads a command's -o flag: "" for the command's text
// form, json, yaml, or one of the extra formats the command also writes.
// A command whose text form is a table lists outputTable among them, and
// gets outputText for "table".
func parseOutputFormat(s string, extra ...outputFormat) (outputFormat, error) {
	switch f := outputFormat(s); {
	case f == outputText || f == outputJSON || f == outputYAML:
		return f, nil
	case f == outputTable && slices.Contains(extra, outputTable):
		return outputText, nil
	case slices.Contains(extra, f):
		return f, nil
	}
	var want []string
	if slices.Contains(extra, outputTable) {
		want = append(want, string(outputTable))
	}
	want = append(want, string(outputJSON), string(outputYAML))
	for _, f := range extra {
		if f != outputTable {
			want = append(want, string(f))
		}
	}
	last := len(want) - 1
	return "", usageErrorf("unknown output format %q (want %s or %s)", s, strings.Join(want[:last], ", "), want[last])
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
