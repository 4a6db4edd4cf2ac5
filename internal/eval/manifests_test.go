package eval

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Documents parsed in parallel come back in the order of the file, empty
// ones counted but dropped, and an error names the document it is in.
func TestDecodeManifestsKeepsOrderAndNumbers(t *testing.T) {
	var b strings.Builder
	var want []document
	for i := 1; i <= 300; i++ {
		if i%7 == 0 {
			b.WriteString("# nothing here\n---\n")
			continue
		}
		fmt.Fprintf(&b, "kind: ConfigMap\nmetadata: {name: c%d}\n---\n", i)
		want = append(want, document{file: "f.yaml", n: i, value: map[string]any{"kind": "ConfigMap", "metadata": map[string]any{"name": fmt.Sprint("c", i)}}})
	}
	docs, err := decodeManifests(strings.NewReader(b.String()), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []document
	for _, d := range docs {
		got = append(got, d.(document))
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(document{})); diff != "" {
		t.Errorf("documents (-want +got):\n%s", diff)
	}

	_, err = decodeManifests(strings.NewReader(b.String()+"a: [\n---\nkind: ConfigMap\n"), "f.yaml")
	if err == nil || !strings.Contains(err.Error(), "f.yaml, document 301:") {
		t.Errorf("a broken document 301: error %v", err)
	}
}
