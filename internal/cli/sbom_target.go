package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/internal/registry"
	"github.com/kix-project/kix/internal/sbom"
	"github.com/kix-project/kix/internal/version"
)

// targetOptions choose what kix sbom, vulns and licenses describe: a store
// path, an image reference served by kix, or a Nix file's attribute.
type targetOptions struct {
	storeOptions
	File      string
	Attr      string
	BuildTime bool
}

// targetHelp explains TARGET in the commands' long help.
const targetHelp = `TARGET is one of
  a store path, a path inside one, or a symlink to one (./result);
  a .drv file (with --buildtime);
  an image reference served by kix: REGISTRY/<hash>-<name>[:tag], or
  nix.internal/<hash>-<name>; the store path is found by its hash, so no
  registry is contacted;
  -f FILE.nix [-A ATTR] instead of an argument: the attribute is built and
  its default output described, with pname, version, licences, homepage,
  description and CPE from the meta of every package in the file.

The runtime closure is described unless --buildtime asks for the derivation
graph: every output and source that building the target used.`

func (o *targetOptions) addTargetFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.File, "filename", "f", "", "Nix file whose attribute (-A) to describe, with its packages' meta")
	fs.StringVarP(&o.Attr, "attr", "A", "", "attribute of the -f file (default: the file's value)")
	fs.BoolVar(&o.BuildTime, "buildtime", false, "describe the derivation graph (build inputs and sources) instead of the runtime closure")
	o.addStoreFlags(fs)
}

// document resolves the target, describes it and enriches the description
// with the derivations in the local store and, for -f, the file's packages.
func (o *targetOptions) document(ctx context.Context, args []string) (*sbom.Document, error) {
	var d *sbom.Document
	var pkgs []*nix.Package
	var err error
	switch {
	case o.File != "" && len(args) > 0:
		return nil, usageErrorf("give either TARGET or -f FILE, not both")
	case o.File != "":
		d, pkgs, err = o.fromFile(ctx)
	case len(args) == 1:
		d, err = o.fromTarget(ctx, args[0])
	case o.Attr != "":
		return nil, usageErrorf("-A needs -f FILE")
	default:
		return nil, usageErrorf("give a TARGET (store path or image reference) or -f FILE [-A ATTR]")
	}
	if err != nil {
		return nil, err
	}
	if err := d.Enrich(sbom.Sources{Derivations: nix.ReadDerivation, Packages: pkgs}); err != nil {
		return nil, err
	}
	d.Tool = sbom.Tool{Name: "kix", Version: version.Get().Version}
	return d, nil
}

// fromFile describes the -f file's attribute, and returns the file's
// packages for Enrich.
func (o *targetOptions) fromFile(ctx context.Context) (*sbom.Document, []*nix.Package, error) {
	if len(o.Substituters) > 0 {
		return nil, nil, usageErrorf("-f evaluates and builds with the local Nix; --substituter is for store paths")
	}
	pkgs, err := nix.EvalPackages(ctx, "", o.File, o.Attr)
	if err != nil {
		return nil, nil, err
	}
	var d *sbom.Document
	if o.BuildTime {
		d, err = buildTimeDoc(ctx, nix.NewLocalStore(), pkgs.Root.DrvPath)
	} else {
		if err := nix.Realise(ctx, "", pkgs.Root.DrvPath); err != nil {
			return nil, nil, err
		}
		d, err = runtimeDoc(ctx, nix.NewLocalStore(), rootOutput(pkgs.Root))
	}
	if err != nil {
		return nil, nil, err
	}
	return d, pkgs.All, nil
}

// rootOutput is what nix-build links ./result to: the output the value
// stands for (pkg.dev's "dev"; a package's first output, "bin" before
// "out" in nixpkgs' curl), else "out".
func rootOutput(p *nix.Package) string {
	if out, ok := p.Outputs[p.OutputName]; ok {
		return out
	}
	return p.Outputs["out"]
}

func (o *targetOptions) fromTarget(ctx context.Context, arg string) (*sbom.Document, error) {
	store, err := o.store()
	if err != nil {
		return nil, err
	}
	path, err := targetStorePath(ctx, store, arg)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(path, ".drv") {
		if !o.BuildTime {
			return nil, usageErrorf("%s is a derivation: describe its build with --buildtime, or give its output", arg)
		}
		return buildTimeDoc(ctx, nix.NewLocalStore(), path)
	}
	if !o.BuildTime {
		return runtimeDoc(ctx, store, path)
	}
	info, err := store.PathInfo(ctx, path)
	if err != nil {
		return nil, err
	}
	if info.Deriver == "" {
		return nil, fmt.Errorf("%s has no known deriver, so its build cannot be described", path)
	}
	return buildTimeDoc(ctx, nix.NewLocalStore(), info.Deriver)
}

// targetStorePath turns TARGET into a store path: a path on this machine
// (resolving ./result), a store path the store may hold, or an image
// reference naming one.
func targetStorePath(ctx context.Context, store nix.Store, arg string) (string, error) {
	if _, err := os.Lstat(arg); err == nil {
		return resolveStorePath(arg)
	}
	if p, err := nix.ParseStorePath(arg); err == nil && strings.HasPrefix(arg, "/") {
		return p, nil
	}
	if strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") || !strings.Contains(arg, "/") {
		return "", fmt.Errorf("%s: no such file, and not a store path or an image reference (REGISTRY/<hash>-<name>)", arg)
	}
	return imageStorePath(ctx, store, arg)
}

// imageStorePath finds the store path of REGISTRY/<hash>[-<name>][:tag].
func imageStorePath(ctx context.Context, store nix.Store, ref string) (string, error) {
	_, repo, _ := strings.Cut(ref, "/")
	if at := strings.Index(repo, "@"); at >= 0 {
		repo = repo[:at]
	}
	if colon := strings.LastIndex(repo, ":"); colon >= 0 {
		repo = repo[:colon]
	}
	p, err := registry.StorePath(ctx, store, repo)
	switch {
	case errors.Is(err, registry.ErrPackagesName):
		return "", usageErrorf("%s names packages of a registry's package set; describe them with -f FILE -A ATTR", ref)
	case errors.Is(err, registry.ErrInvalidName):
		return "", fmt.Errorf("%s is not an image reference served by kix (want REGISTRY/<hash>-<name>): %w", ref, err)
	case err != nil:
		return "", fmt.Errorf("%s: %w", ref, err)
	}
	return p, nil
}

func runtimeDoc(ctx context.Context, store nix.Store, root string) (*sbom.Document, error) {
	closure, err := nix.Closure(ctx, store, root)
	if err != nil {
		return nil, fmt.Errorf("closure of %s: %w", root, err)
	}
	return sbom.FromClosure([]string{root}, closure)
}

// buildTimeDoc describes a derivation's build from the local store, which
// holds the .drv files. Paths of the graph that are valid get their NAR
// hashes.
func buildTimeDoc(ctx context.Context, store nix.Store, drvPath string) (*sbom.Document, error) {
	graph, err := nix.DerivationGraph(drvPath)
	if errors.Is(err, nix.ErrNotFound) {
		return nil, fmt.Errorf("--buildtime reads derivations from the local store: %w", err)
	}
	if err != nil {
		return nil, err
	}
	var present []string
	for _, drv := range graph {
		for _, p := range drv.Outputs {
			if _, err := os.Lstat(p); err == nil {
				present = append(present, p)
			}
		}
		present = append(present, drv.InputSrcs...)
	}
	infos := map[string]*nix.PathInfo{}
	if len(present) > 0 {
		closure, err := nix.Closure(ctx, store, present...)
		if err != nil {
			return nil, err
		}
		for _, info := range closure {
			infos[info.Path] = info
		}
	}
	return sbom.FromDerivations([]string{drvPath}, graph, infos)
}
