package nix

import "strings"

// Quote returns s as a Nix string literal, for expressions built in Go:
// Quote(`say "${x}"`) is `"say \"\${x}\""`, which Nix reads back as s.
func Quote(s string) string {
	return `"` + quoteReplacer.Replace(s) + `"`
}

var quoteReplacer = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`, "\n", `\n`, "\r", `\r`, "\t", `\t`)

// quoteList returns items as a Nix list of strings.
func quoteList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = Quote(s)
	}
	return "[ " + strings.Join(quoted, " ") + " ]"
}

// pathLiteral writes an absolute path as a Nix path value.
func pathLiteral(p string) string {
	return "(/. + " + Quote(p) + ")"
}
