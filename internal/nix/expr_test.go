package nix

import (
	"encoding/json"
	"testing"

	"github.com/kix-project/kix/test/fixture"
	"github.com/kix-project/kix/test/testenv"
)

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		`a`:      `"a"`,
		`a"b`:    `"a\"b"`,
		`${x}`:   `"\${x}"`,
		`\`:      `"\\"`,
		"a\nb\t": `"a\nb\t"`,
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

// Nix reads what Quote writes back as the string quoted.
func TestQuoteRoundTripsThroughNix(t *testing.T) {
	testenv.LookPath(t, "nix")
	in := []string{"plain", `a"b`, `${x}`, `$${x}`, `\${x}`, `\`, `\\"`, "''", "a\nb\r\tc", "é ✓", "$", "${", "}"}
	out := fixture.RunNix(t, "nix", "--extra-experimental-features", "nix-command", "eval", "--json", "--expr", quoteList(in))
	var got []string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("nix gave %d strings, want %d: %q", len(got), len(in), got)
	}
	for i := range in {
		if got[i] != in[i] {
			t.Errorf("Quote(%q) reads back as %q", in[i], got[i])
		}
	}
}
