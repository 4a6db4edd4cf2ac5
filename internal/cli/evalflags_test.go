package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kix-project/kix/test/testenv"
)

func TestJoinNixArgs(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"build", "--arg", "n", "[ 1 ]", "--argstr", "s", "hi"}, []string{"build", "--arg", "n=[ 1 ]", "--argstr", "s=hi"}},
		{[]string{"--arg", "n=1", "-o", "json"}, []string{"--arg", "n=1", "-o", "json"}},
		{[]string{"--argstr", "s t", "-o"}, []string{"--argstr", "s t", "-o"}},
		{[]string{"--arg", "n"}, []string{"--arg", "n"}},
		{[]string{"--arg", "a.b", "1"}, []string{"--arg", "a.b", "1"}},
		{[]string{"--", "--arg", "n", "1"}, []string{"--", "--arg", "n", "1"}},
		{[]string{"--argstr", "env", "--dry-run=server"}, []string{"--argstr", "env", "--dry-run=server"}},
		{[]string{"--argstr", "n", "-5"}, []string{"--argstr", "n=-5"}},
	} {
		if got := joinNixArgs(c.in); !slices.Equal(got, c.want) {
			t.Errorf("joinNixArgs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// --arg and --argstr take a name and a value as nix-build's do, or one
// NAME=VALUE argument.
func TestBuildTakesNixBuildsArgs(t *testing.T) {
	testenv.LookPath(t, "nix-instantiate")
	file := filepath.Join(t.TempDir(), "cm.nix")
	expr := `{ keys, name }: [ { apiVersion = "v1"; kind = "ConfigMap"; metadata.name = name; data = builtins.listToAttrs (map (k: { name = k; value = "x"; }) keys); } ]`
	if err := os.WriteFile(file, []byte(expr), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--arg", "keys", `[ "a" "b" ]`, "--argstr", "name", "two-args"},
		{"--arg", `keys=[ "a" "b" ]`, "--argstr", "name=two-args"},
	} {
		code, out, stderr := run(t, append([]string{"build", "-f", file, "-o", "json"}, args...)...)
		if code != 0 {
			t.Fatalf("kix build %q: exit %d: %s", args, code, stderr)
		}
		var list struct {
			Items []struct {
				Metadata struct{ Name string }
				Data     map[string]string
			}
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Items) != 1 {
			t.Fatalf("kix build %q: %v\n%s", args, err, out)
		}
		if cm := list.Items[0]; cm.Metadata.Name != "two-args" || len(cm.Data) != 2 {
			t.Errorf("kix build %q: %+v", args, cm)
		}
	}
}
