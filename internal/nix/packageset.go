package nix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// ErrUnknownAttribute is wrapped by errors for attributes a package set
// does not have.
var ErrUnknownAttribute = errors.New("unknown attribute")

// PackageSet is a Nix file (or folder with a default.nix) or a flake
// reference whose attributes are packages, as nixery's package sets are.
// Flake references contain a '#' or a scheme ("github:owner/repo#").
type PackageSet struct {
	Ref string
	// Nix is the nix command; "nix" on PATH if empty.
	Nix string
}

var flakeScheme = regexp.MustCompile(`^[a-z+]+:`)

var attrName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_'-]*(\.[A-Za-z_][A-Za-z0-9_'-]*)*$`)

// Build builds the attributes and returns their default outputs, in the
// order asked.
func (p *PackageSet) Build(ctx context.Context, attrs []string) ([]string, error) {
	for _, a := range attrs {
		if !attrName.MatchString(a) {
			return nil, fmt.Errorf("%q is not an attribute name: %w", a, ErrUnknownAttribute)
		}
	}
	args := []string{"--extra-experimental-features", "nix-command flakes", "build", "--no-link", "--json"}
	if p.IsFlake() {
		base := strings.TrimSuffix(p.Ref, "#")
		for _, a := range attrs {
			args = append(args, base+"#"+a)
		}
	} else {
		args = append(args, "--file", p.Ref)
		args = append(args, attrs...)
	}
	nixCmd := p.Nix
	if nixCmd == "" {
		nixCmd = "nix"
	}
	out, err := Run(ctx, nil, nixCmd, args...)
	if err != nil {
		return nil, p.buildError(attrs, err)
	}
	var built []struct {
		Outputs map[string]string `json:"outputs"`
	}
	if err := json.Unmarshal(out, &built); err != nil {
		return nil, fmt.Errorf("nix build %s: decoding output: %w", p.Ref, err)
	}
	if len(attrs) == 1 {
		if len(built) != 1 {
			return nil, fmt.Errorf("nix build %s: asked for 1 attribute, got %d results", p.Ref, len(built))
		}
		o := defaultOutput(built[0].Outputs)
		if o == "" {
			return nil, fmt.Errorf("%s in %s has no outputs", attrs[0], p.Ref)
		}
		return []string{o}, nil
	}
	// nix build answers in an order of its own (Nix 2.8 sorts by
	// derivation name) and as one result for two outputs of a derivation
	// (pkg and pkg.out); the evaluated output paths give the order asked,
	// which PATH follows.
	ordered, err := p.outPaths(ctx, nixCmd, attrs)
	if err != nil {
		return nil, err
	}
	builtPaths := map[string]bool{}
	for _, b := range built {
		for _, o := range b.Outputs {
			builtPaths[o] = true
		}
	}
	for _, o := range ordered {
		if !builtPaths[o] {
			return nil, fmt.Errorf("nix build %s: %s was not among the results", p.Ref, o)
		}
	}
	return ordered, nil
}

// defaultOutput picks the output nix build made of one attribute: "out"
// if it made that one, else the first by name.
func defaultOutput(outputs map[string]string) string {
	if o, ok := outputs["out"]; ok {
		return o
	}
	names := slices.Sorted(maps.Keys(outputs))
	if len(names) == 0 {
		return ""
	}
	return outputs[names[0]]
}

// outPaths evaluates the attributes' output paths, in order.
func (p *PackageSet) outPaths(ctx context.Context, nixCmd string, attrs []string) ([]string, error) {
	if p.IsFlake() {
		out := make([]string, len(attrs))
		for i, a := range attrs {
			o, err := p.eval(ctx, nixCmd, strings.TrimSuffix(p.Ref, "#")+"#"+a+".outPath")
			if err != nil {
				return nil, err
			}
			if err := json.Unmarshal(o, &out[i]); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	abs, err := filepath.Abs(p.Ref)
	if err != nil {
		return nil, err
	}
	var list strings.Builder
	for _, a := range attrs {
		list.WriteString("[")
		for _, k := range strings.Split(a, ".") {
			list.WriteString(Quote(k) + " ")
		}
		list.WriteString("] ")
	}
	expr := fmt.Sprintf(`let f = import (/. + %s); ps = if builtins.isFunction f then f { } else f; in map (path: (builtins.foldl' (x: k: x.${k}) ps path).outPath) [ %s]`, Quote(abs), list.String())
	o, err := p.eval(ctx, nixCmd, "--impure", "--expr", expr)
	if err != nil {
		return nil, err
	}
	var out []string
	return out, json.Unmarshal(o, &out)
}

func (p *PackageSet) eval(ctx context.Context, nixCmd string, args ...string) ([]byte, error) {
	out, err := Run(ctx, nil, nixCmd, append([]string{"--extra-experimental-features", "nix-command flakes", "eval", "--json"}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("evaluating output paths in %s: %w", p.Ref, err)
	}
	return out, nil
}

// IsFlake reports whether Ref is a flake reference rather than a file.
func (p *PackageSet) IsFlake() bool {
	return strings.Contains(p.Ref, "#") || flakeScheme.MatchString(p.Ref)
}

var missingAttr = regexp.MustCompile(`attribute '([^']*)' in selection path '[^']*' not found|does not provide attribute '([^']*)'`)

func (p *PackageSet) buildError(attrs []string, err error) error {
	var cmdErr *CommandError
	if errors.As(err, &cmdErr) {
		if m := missingAttr.FindStringSubmatch(cmdErr.Stderr); m != nil {
			name := m[1] + m[2]
			return fmt.Errorf("package set %s has no attribute %q: %w", p.Ref, name, ErrUnknownAttribute)
		}
	}
	return fmt.Errorf("building %s from %s: %w", strings.Join(attrs, " "), p.Ref, err)
}
