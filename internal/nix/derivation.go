package nix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nix-community/go-nix/pkg/derivation"
)

// Derivation is a store derivation (a .drv file): how to build some store
// paths, and from what.
type Derivation struct {
	Path      string              // /nix/store/<hash>-<name>.drv
	Name      string              // the derivation's name, "hello-2.12.1"
	Outputs   map[string]string   // output name ("out", "dev") -> store path
	InputDrvs map[string][]string // input derivation -> the outputs used
	InputSrcs []string            // store paths used as they are (sources, patches)
	Env       map[string]string   // the builder's environment
}

// Patches returns the store paths listed in the derivation's "patches"
// attribute (as nixpkgs' stdenv reads it), in order.
func (d *Derivation) Patches() []string {
	return strings.Fields(d.Env["patches"])
}

// OutputNames returns the derivation's output names, sorted.
func (d *Derivation) OutputNames() []string {
	names := make([]string, 0, len(d.Outputs))
	for n := range d.Outputs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ReadDerivation reads a .drv file from the local store. Errors for a file
// that does not exist wrap ErrNotFound.
func ReadDerivation(drvPath string) (*Derivation, error) {
	if _, err := ParseStorePath(drvPath); err != nil || !strings.HasSuffix(drvPath, ".drv") {
		return nil, fmt.Errorf("%q is not a store derivation (want %s/<hash>-<name>.drv)", drvPath, StoreDir)
	}
	f, err := os.Open(drvPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &NotFoundError{Path: drvPath, Store: "the local store"}
	}
	if err != nil {
		return nil, fmt.Errorf("reading derivation %s: %w", drvPath, err)
	}
	defer f.Close()
	drv, err := derivation.ReadDerivation(f)
	if err != nil {
		return nil, fmt.Errorf("parsing derivation %s: %w", drvPath, err)
	}
	d := &Derivation{
		Path:      drvPath,
		Name:      drv.Name(),
		Outputs:   make(map[string]string, len(drv.Outputs)),
		InputDrvs: drv.InputDerivations,
		InputSrcs: drv.InputSources,
		Env:       drv.Env,
	}
	for name, o := range drv.Outputs {
		d.Outputs[name] = o.Path
	}
	return d, nil
}

// DerivationGraph reads roots and every derivation they depend on, directly
// or not, from the local store (what `nix show-derivation --recursive`
// prints), keyed by .drv path.
func DerivationGraph(roots ...string) (map[string]*Derivation, error) {
	graph := map[string]*Derivation{}
	queue := slices.Clone(roots)
	for len(queue) > 0 {
		p := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if _, ok := graph[p]; ok {
			continue
		}
		d, err := ReadDerivation(p)
		if err != nil {
			return nil, err
		}
		graph[p] = d
		for in := range d.InputDrvs {
			if _, ok := graph[in]; !ok {
				queue = append(queue, in)
			}
		}
	}
	return graph, nil
}

// Package is what a Nix expression says about one derivation: the names
// and meta attributes nixpkgs' conventions give it.
type Package struct {
	Attr        string            `json:"attr,omitempty"` // attribute path in the file, "" for the file itself
	Name        string            `json:"name"`
	Pname       string            `json:"pname,omitempty"`
	Version     string            `json:"version,omitempty"`
	DrvPath     string            `json:"drvPath"`
	Outputs     map[string]string `json:"outputs"`    // output name -> store path
	OutputName  string            `json:"outputName"` // the output the value stands for (pkg.dev: "dev"), as nix-build links it
	Licenses    []string          `json:"licenses"`   // SPDX ids; LicenseRef-nixpkgs-<shortName, or the string given> for others
	Homepage    string            `json:"homepage"`   // the first, if meta.homepage is a list
	Description string            `json:"description"`
	CPE         string            `json:"cpe"` // meta.identifiers.cpe, or meta.cpe
}

// Packages is the result of EvalPackages.
type Packages struct {
	Root *Package   `json:"root"`
	All  []*Package `json:"packages"` // Root and every package found, sorted by DrvPath
}

// EvalPackages evaluates a Nix file (called with no arguments if it is a
// function, as nix-build does) and returns the derivation at attr ("" for
// the file's value itself), every derivation among the file's top-level
// attributes, and inside attribute sets marked recurseForDerivations, as
// `nix-env -qa --meta` lists a package set, and every derivation the root
// depends on through its inputs (buildInputs and the like, its stdenv and
// compiler), so the closure's dependencies have their meta too.
// Attributes that fail to evaluate, and values that are not derivations,
// are skipped; the root must be a derivation.
func EvalPackages(ctx context.Context, nixCmd, file, attr string) (*Packages, error) {
	if nixCmd == "" {
		nixCmd = "nix"
	}
	var path []string
	if attr != "" {
		if !attrName.MatchString(attr) {
			return nil, fmt.Errorf("%q is not an attribute path: %w", attr, ErrUnknownAttribute)
		}
		path = strings.Split(attr, ".")
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("nix file: %w", err)
	}
	expr := fmt.Sprintf(packagesExpr, Quote(abs), quoteList(path))
	out, err := Run(ctx, nil, nixCmd, "--extra-experimental-features", "nix-command",
		"eval", "--json", "--impure", "--expr", expr)
	var cmdErr *CommandError
	switch {
	case errors.As(err, &cmdErr) && strings.Contains(cmdErr.Stderr, "kix: no attribute"):
		return nil, fmt.Errorf("%s has no attribute %q: %w", file, attr, ErrUnknownAttribute)
	case errors.As(err, &cmdErr) && strings.Contains(cmdErr.Stderr, "kix: not a derivation"):
		return nil, fmt.Errorf("%s: %s is not a derivation", file, orFile(attr))
	case err != nil:
		return nil, fmt.Errorf("evaluating %s: %w", file, err)
	}
	var pkgs Packages
	if err := json.Unmarshal(out, &pkgs); err != nil {
		return nil, fmt.Errorf("evaluating %s: decoding output: %w", file, err)
	}
	pkgs.Root.Attr = attr
	all := []*Package{pkgs.Root}
	seen := map[string]bool{pkgs.Root.DrvPath: true}
	for _, p := range pkgs.All {
		if !seen[p.DrvPath] {
			seen[p.DrvPath] = true
			all = append(all, p)
		}
	}
	slices.SortFunc(all, func(a, b *Package) int { return strings.Compare(a.DrvPath, b.DrvPath) })
	pkgs.All = all
	return &pkgs, nil
}

func orFile(attr string) string {
	if attr == "" {
		return "the file's value"
	}
	return "attribute " + attr
}

// Realise builds the outputs of a store derivation, or substitutes them,
// with nix-store --realise ("nix-store" on PATH if nixStoreCmd is empty).
func Realise(ctx context.Context, nixStoreCmd, drvPath string) error {
	if nixStoreCmd == "" {
		nixStoreCmd = "nix-store"
	}
	if _, err := Run(ctx, nil, nixStoreCmd, "--realise", drvPath); err != nil {
		return fmt.Errorf("building %s: %w", drvPath, err)
	}
	return nil
}

// packagesExpr is the expression EvalPackages evaluates; %s are the file
// and the attribute path as a list of strings.
const packagesExpr = `
let
  file = %s;
  attrPath = %s;
  imported = import file;
  top = if builtins.isFunction imported then imported { } else imported;
  isDrv = v: builtins.isAttrs v && (v.type or null) == "derivation";
  str = v: if builtins.isString v then v else if builtins.isList v && v != [ ] then str (builtins.head v) else "";
  licenseIds = l:
    if builtins.isList l then builtins.concatMap licenseIds l
    else if builtins.isAttrs l then
      [ (if l ? spdxId then l.spdxId else "LicenseRef-nixpkgs-" + (l.shortName or "unknown")) ]
    else if builtins.isString l then
      [ (if builtins.substring 0 11 l == "LicenseRef-" then l else "LicenseRef-nixpkgs-" + l) ]
    else [ ];
  info = attr: v:
    let m = v.meta or { }; in {
      inherit attr;
      name = v.name or "";
      pname = str (v.pname or "");
      version = str (v.version or "");
      drvPath = v.drvPath;
      outputs = builtins.listToAttrs (map (o: { name = o; value = v.${o}.outPath; }) (v.outputs or [ "out" ]));
      outputName = v.outputName or (builtins.head (v.outputs or [ "out" ]));
      licenses = licenseIds (m.license or [ ]);
      homepage = str (m.homepage or "");
      description = str (m.description or "");
      cpe = str (m.identifiers.cpe or m.cpe or "");
    };
  tryInfo = attr: v:
    let r = builtins.tryEval (if isDrv v then builtins.deepSeq (info attr v) [ (info attr v) ] else [ ]); in
    if r.success then r.value else [ ];
  collect = prefix: set: builtins.concatMap (n:
    let
      attr = if prefix == "" then n else prefix + "." + n;
      r = builtins.tryEval set.${n};
      v = r.value;
    in
    if !r.success then [ ]
    else if isDrv v then tryInfo attr v
    else if builtins.isAttrs v && (v.recurseForDerivations or false) then collect attr v
    else [ ]) (builtins.attrNames set);
  select = v: path:
    if path == [ ] then v
    else if builtins.isAttrs v && v ? ${builtins.head path} then select v.${builtins.head path} (builtins.tail path)
    else throw "kix: no attribute";
  root = select top attrPath;
  # The root's dependencies, as its derivation attributes name them: meta
  # for what the closure holds but the file's attributes do not.
  depAttrs = [
    "buildInputs" "nativeBuildInputs" "propagatedBuildInputs" "propagatedNativeBuildInputs"
    "depsBuildBuild" "depsBuildTarget" "depsHostHost" "depsTargetTarget"
    "depsBuildBuildPropagated" "depsBuildTargetPropagated" "depsHostHostPropagated" "depsTargetTargetPropagated"
    "stdenv" "cc" "libc" "bintools"
  ];
  asList = v: if builtins.isList v then v else [ v ];
  drvsOf = v: builtins.concatMap (a:
    let r = builtins.tryEval (if builtins.isAttrs v && v ? ${a} then asList v.${a} else [ ]); in
    if !r.success then [ ] else builtins.concatMap (d:
      let k = builtins.tryEval (if isDrv d then [ { key = d.drvPath; v = d; } ] else [ ]); in
      if k.success then k.value else [ ]) r.value) depAttrs;
  deps = if !(isDrv root) then [ ] else builtins.genericClosure {
    startSet = [ { key = root.drvPath; v = root; } ];
    operator = item: drvsOf item.v;
  };
in {
  root = if isDrv root then info "" root else throw "kix: not a derivation";
  packages = (if builtins.isAttrs top && !(isDrv top) then collect "" top else [ ])
    ++ builtins.concatMap (item: tryInfo "" item.v) deps;
}
`
