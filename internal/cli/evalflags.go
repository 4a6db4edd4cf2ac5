package cli

import (
	"context"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kix-project/kix/internal/eval"
)

// evalOptions choose what to evaluate: -f, -A, --arg, --argstr.
type evalOptions struct {
	File    string
	Attr    string
	Args    []string
	ArgStrs []string
}

func (o *evalOptions) addEvalFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.File, "filename", "f", "", "Nix file, flake output (PATH#attr), or YAML/JSON manifests file or folder; - for standard input")
	fs.StringVarP(&o.Attr, "attr", "A", "", "attribute of the Nix file's value to evaluate")
	fs.StringArrayVar(&o.Args, "arg", nil, "NAME=EXPR or NAME EXPR: pass a Nix expression to the file's function (repeatable)")
	fs.StringArrayVar(&o.ArgStrs, "argstr", nil, "NAME=VALUE or NAME VALUE: pass a string to the file's function (repeatable)")
}

// evaluate evaluates the input; Nix's build output goes to log.
func (o *evalOptions) evaluate(ctx context.Context, in io.Reader, log io.Writer) (*eval.Result, error) {
	args, err := pairs("--arg", o.Args)
	if err != nil {
		return nil, err
	}
	argStrs, err := pairs("--argstr", o.ArgStrs)
	if err != nil {
		return nil, err
	}
	return eval.Evaluate(ctx, eval.Options{File: o.File, Attr: o.Attr, Args: args, ArgStrs: argStrs, Stdin: in, Log: log})
}

// joinNixArgs lets --arg and --argstr take their name and value as two
// arguments, as nix-build does (--arg sizes '[ 1 2 ]'), by joining them
// into the one NAME=VALUE argument a flag takes. A value that has its "="
// already is left alone, and so is everything after "--". A flag after the
// name is not taken as its value (--argstr env --dry-run=server is a
// missing value, not env="--dry-run=server"): the flag parser then
// refuses the name alone.
func joinNixArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if (a == "--arg" || a == "--argstr") && i+2 < len(args) && isNixName(args[i+1]) && !strings.HasPrefix(args[i+2], "--") {
			out = append(out, a, args[i+1]+"="+args[i+2])
			i += 2
			continue
		}
		out = append(out, a)
	}
	return out
}

// isNixName reports whether s is a Nix identifier.
func isNixName(s string) bool {
	for i, r := range s {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_'
		if !letter && (i == 0 || !(r >= '0' && r <= '9' || r == '\'' || r == '-')) {
			return false
		}
	}
	return s != ""
}

// pairs reads "--arg NAME EXPR" values. pflag gives one value per flag,
// so both "NAME=EXPR" and "NAME EXPR" (quoted together) are accepted.
func pairs(flag string, values []string) (map[string]string, error) {
	m := map[string]string{}
	for _, v := range values {
		name, value, ok := strings.Cut(v, "=")
		if !ok {
			name, value, ok = strings.Cut(v, " ")
		}
		if !ok || name == "" {
			return nil, usageErrorf("%s %q: want NAME=VALUE", flag, v)
		}
		m[name] = value
	}
	return m, nil
}

// checkInput refuses, before anything is evaluated or built, a command
// line without -f or with --push but no --registry.
func checkInput(e *evalOptions, i *imageRefOptions) error {
	if e.File == "" {
		return usageErrorf("give what to deploy with -f FILE (a Nix file, a flake output, or manifests)")
	}
	if i.Push && i.Registry == "" {
		return usageErrorf("--push needs --registry")
	}
	return nil
}

// evaluatePublished evaluates -f and applies --registry/--push.
func evaluatePublished(ctx context.Context, e *evalOptions, i *imageRefOptions, streams IOStreams) (*eval.Result, error) {
	res, err := e.evaluate(ctx, streams.In, streams.ErrOut)
	if err != nil {
		return nil, err
	}
	return res, i.publish(ctx, res, streams.ErrOut)
}
