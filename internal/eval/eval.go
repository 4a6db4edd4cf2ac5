package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kix-project/kix/internal/nix"
)

// Options say what to evaluate.
type Options struct {
	// File is a Nix file, a flake reference (holding '#'), a YAML or JSON
	// manifests file, or a folder of manifests. "-" reads manifests from Stdin.
	File string
	// Attr selects an attribute of a Nix file's value (-A).
	Attr string
	// Args and ArgStrs are passed to a Nix file that is a function
	// (--arg NAME EXPR, --argstr NAME VALUE).
	Args    map[string]string
	ArgStrs map[string]string
	// Nix is the nix command; "nix" on PATH if empty.
	Nix string
	// Log receives Nix's build output; discarded if nil.
	Log io.Writer
	// Stdin is read when File is "-".
	Stdin io.Reader
	// Apply, a Nix function, is applied to the selected value before it
	// becomes JSON (a catalogue drops its blocks' functions this way).
	Apply string
}

// Result is what an evaluation produced.
type Result struct {
	Objects []*unstructured.Unstructured
	// StorePaths are the store paths the objects depend on, realised.
	StorePaths []string
	// Source names the input in messages: "app.nix", "app.nix (attribute
	// manifests)", "./repo#manifests".
	Source string
}

// Evaluate evaluates the input and returns its objects.
func Evaluate(ctx context.Context, opts Options) (*Result, error) {
	if opts.File == "" {
		return nil, errors.New("nothing to evaluate: give -f FILE")
	}
	res := &Result{Source: sourceName(opts)}
	var value any
	switch {
	case opts.File == "-":
		docs, err := decodeManifests(opts.Stdin, "standard input")
		if err != nil {
			return nil, err
		}
		value = docs
	case !strings.Contains(opts.File, "#") && !exists(opts.File):
		return nil, fmt.Errorf("-f %s: no such file or folder", opts.File)
	case isNix(opts.File):
		v, paths, err := evalNix(ctx, opts, res.Source)
		if err != nil {
			return nil, err
		}
		value, res.StorePaths = v, paths
	default:
		if len(opts.Args)+len(opts.ArgStrs) > 0 || opts.Attr != "" {
			return nil, fmt.Errorf("%s is not a Nix file: -A, --arg and --argstr apply to Nix files", opts.File)
		}
		docs, err := readManifests(opts.File)
		if err != nil {
			return nil, err
		}
		value = docs
	}
	objs, err := toObjects(value, res.Source)
	if err != nil {
		return nil, err
	}
	res.Objects = objs
	return res, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func sourceName(opts Options) string {
	switch {
	case opts.File == "-":
		return "standard input"
	case opts.Attr != "":
		return fmt.Sprintf("%s (attribute %s)", opts.File, opts.Attr)
	}
	return opts.File
}

// isNix tells Nix inputs (files ending in .nix, folders with a
// default.nix, flake references) from manifests.
func isNix(file string) bool {
	if strings.Contains(file, "#") || strings.HasSuffix(file, ".nix") {
		return true
	}
	if fi, err := os.Stat(file); err == nil && fi.IsDir() {
		_, err := os.Stat(file + "/default.nix")
		return err == nil
	}
	return false
}

// wrapper is applied to the user's value: it returns the value as JSON
// without string context, and the context itself (what must be realised).
// A derivation becomes its output path (its manifests).
const wrapper = `v:
let
  isDrv = x: builtins.isAttrs x && (x.type or null) == "derivation";
  value = if isDrv v then v.outPath else v;
  j = builtins.toJSON value;
in { json = builtins.unsafeDiscardStringContext j; context = builtins.getContext j; }`

type nixOutput struct {
	JSON    string `json:"json"`
	Context map[string]struct {
		Path       bool     `json:"path"`
		AllOutputs bool     `json:"allOutputs"`
		Outputs    []string `json:"outputs"`
	} `json:"context"`
}

func evalNix(ctx context.Context, opts Options, source string) (any, []string, error) {
	args := []string{"--extra-experimental-features", "nix-command flakes", "eval", "--json"}
	if strings.Contains(opts.File, "#") {
		if len(opts.Args)+len(opts.ArgStrs) > 0 {
			return nil, nil, fmt.Errorf("%s: --arg and --argstr do not apply to flake outputs", opts.File)
		}
		ref := opts.File
		if opts.Attr != "" {
			ref += "." + opts.Attr
		}
		args = append(args, ref, "--apply", "v: ("+wrapper+") ("+applied(opts)+" v)")
	} else {
		expr, err := fileExpr(opts)
		if err != nil {
			return nil, nil, err
		}
		args = append(args, "--impure", "--expr", expr)
	}
	quiet := opts
	quiet.Log = nil // evaluation says nothing but errors, which the error carries
	out, err := runNix(ctx, quiet, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("evaluating %s: %w", source, err)
	}
	var res nixOutput
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, nil, fmt.Errorf("evaluating %s: decoding nix output: %w", source, err)
	}
	paths, err := realise(ctx, opts, res)
	if err != nil {
		return nil, nil, fmt.Errorf("building what %s refers to: %w", source, err)
	}
	var value any
	if err := json.Unmarshal([]byte(res.JSON), &value); err != nil {
		return nil, nil, fmt.Errorf("evaluating %s: %w", source, err)
	}
	return value, paths, nil
}

// fileExpr is the expression that evaluates a Nix file as nix-build would:
// a function is called with the --arg and --argstr values it names, the -A
// attribute is selected, and the wrapper applied.
func fileExpr(opts Options) (string, error) {
	abs, err := filepath.Abs(opts.File)
	if err != nil {
		return "", err
	}
	selected := "v"
	if opts.Attr != "" {
		for _, part := range strings.Split(opts.Attr, ".") {
			selected += "." + nix.Quote(part)
		}
	}
	var b strings.Builder
	b.WriteString("let\n  f = import (/. + " + nix.Quote(abs) + ");\n  args = {\n")
	for _, k := range sortedKeys(opts.Args) {
		fmt.Fprintf(&b, "    %s = (%s);\n", nix.Quote(k), opts.Args[k])
	}
	for _, k := range sortedKeys(opts.ArgStrs) {
		fmt.Fprintf(&b, "    %s = %s;\n", nix.Quote(k), nix.Quote(opts.ArgStrs[k]))
	}
	b.WriteString("  };\n  v = if builtins.isFunction f then f (builtins.intersectAttrs (builtins.functionArgs f) args) else f;\n")
	b.WriteString("in (" + wrapper + ") (" + applied(opts) + " (" + selected + "))\n")
	return b.String(), nil
}

// applied is the function the options apply to the value.
func applied(opts Options) string {
	if opts.Apply == "" {
		return "(v: v)"
	}
	return "(" + opts.Apply + ")"
}

// Value evaluates a Nix file or flake output (Options.File, Attr, Args,
// ArgStrs, Apply) and returns its value decoded from JSON, with every
// store path it refers to realised and listed.
func Value(ctx context.Context, opts Options) (any, []string, error) {
	if !isNix(opts.File) {
		return nil, nil, fmt.Errorf("%s is not a Nix file or flake reference", opts.File)
	}
	return evalNix(ctx, opts, sourceName(opts))
}

// realise builds the derivations in the context and returns every store
// path the value refers to.
func realise(ctx context.Context, opts Options, out nixOutput) ([]string, error) {
	var drvs, paths []string
	for p, c := range out.Context {
		if c.Path {
			paths = append(paths, p)
		}
		if c.AllOutputs || len(c.Outputs) > 0 {
			drvs = append(drvs, p)
		}
	}
	slices.Sort(drvs)
	if len(drvs) > 0 {
		built, err := runCommand(ctx, opts, "nix-store", append([]string{"--realise"}, drvs...)...)
		if err != nil {
			return nil, err
		}
		paths = append(paths, strings.Fields(string(built))...)
	}
	slices.Sort(paths)
	return slices.Compact(paths), nil
}

func runNix(ctx context.Context, opts Options, args ...string) ([]byte, error) {
	nixCmd := opts.Nix
	if nixCmd == "" {
		nixCmd = "nix"
	}
	return runCommand(ctx, opts, nixCmd, args...)
}

// runCommand runs a Nix command; its stderr goes to opts.Log as well.
func runCommand(ctx context.Context, opts Options, name string, args ...string) ([]byte, error) {
	var log io.Writer
	if opts.Log != nil {
		log = &dropLines{w: opts.Log, drop: "did not specify '--add-root'"}
	}
	return nix.Run(ctx, log, name, args...)
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// dropLines passes what is written to w, except lines containing drop:
// nix-store warns about GC roots on every --realise, and kix makes none on
// purpose (what it deploys is rooted by the cluster, not by the client).
type dropLines struct {
	w       io.Writer
	drop    string
	partial []byte
}

func (d *dropLines) Write(p []byte) (int, error) {
	d.partial = append(d.partial, p...)
	for {
		i := bytes.IndexByte(d.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := d.partial[:i+1]
		if !bytes.Contains(line, []byte(d.drop)) {
			if _, err := d.w.Write(line); err != nil {
				return len(p), err
			}
		}
		d.partial = d.partial[i+1:]
	}
}
