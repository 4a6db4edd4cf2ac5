package sbom

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/kix-project/kix/internal/nix"
	"github.com/kix-project/kix/test/fixture"
	"github.com/kix-project/kix/test/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// sbomNix is the supply-chain fixture file.
func sbomNix() string { return filepath.Join(fixture.Dir(), "sbom.nix") }

var builds sync.Map // attr -> string

// build builds attr of test/nix/sbom.nix and returns its output.
func build(t *testing.T, attr string) string {
	t.Helper()
	if p, ok := builds.Load(attr); ok {
		return p.(string)
	}
	fixture.Build(t, "busybox") // skips (or fails under CI) without Nix
	out := strings.TrimSpace(fixture.RunNix(t, "nix-build", sbomNix(), "-A", attr, "--no-out-link"))
	builds.Store(attr, out)
	return out
}

// withNixConf makes nix commands run by the code under test use the
// fixture configuration (no substituters) unless the caller set one.
func withNixConf(t *testing.T) {
	if os.Getenv("NIX_CONF_DIR") == "" {
		t.Setenv("NIX_CONF_DIR", filepath.Join(fixture.Root(), "hack", "nix"))
	}
}

// runtimeDoc is what `kix sbom -f test/nix/sbom.nix -A attr` describes.
func runtimeDoc(t *testing.T, attr string) *Document {
	t.Helper()
	withNixConf(t)
	return describe(t, sbomNix(), attr, build(t, attr))
}

// describe returns the runtime document of out, the output of attr in a
// Nix file, enriched as `kix sbom -f file -A attr` enriches it.
func describe(t *testing.T, file, attr, out string) *Document {
	t.Helper()
	ctx := context.Background()
	closure, err := nix.Closure(ctx, nix.NewLocalStore(), out)
	if err != nil {
		t.Fatal(err)
	}
	d, err := FromClosure([]string{out}, closure)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := nix.EvalPackages(ctx, "", file, attr)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Enrich(Sources{Derivations: nix.ReadDerivation, Packages: pkgs.All}); err != nil {
		t.Fatal(err)
	}
	d.Tool = Tool{Name: "kix", Version: "test"}
	return d
}

// hostIndependent returns a copy of d whose encodings are the same on
// every machine, for the golden files. Every store path of the fixture
// depends on the host: the host's /usr/bin/busybox builds everything, and
// the Nix system goes into every derivation. So do the NAR hashes of the
// paths that refer to others, and the NAR size of busybox, which holds
// the host's binary and a link per applet. The copy gives each store path
// a hash made from its name, each NAR hash the SHA-256 of the new store
// path, and busybox a NAR size of 1; everything else is as it was. The
// real values are checked against Nix by TestRuntimeSBOMStoreMetadata.
func hostIndependent(t *testing.T, d *Document) *Document {
	t.Helper()
	byName := map[string]string{}
	rename := func(p string) string {
		if p == "" {
			return ""
		}
		name := nix.NamePart(p)
		if other, ok := byName[name]; ok && other != p {
			t.Fatalf("%s and %s have the same name, which the golden files cannot tell apart", other, p)
		}
		byName[name] = p
		sum := sha256.Sum256([]byte(name))
		return nix.StoreDir + "/" + nixbase32.EncodeToString(sum[:20]) + "-" + name
	}
	renameAll := func(ps []string) []string {
		var out []string
		for _, p := range ps {
			out = append(out, rename(p))
		}
		return out
	}
	h := &Document{Roots: renameAll(d.Roots), Scope: d.Scope, Tool: d.Tool, Timestamp: d.Timestamp}
	for _, c := range d.Components {
		n := *c
		n.StorePath, n.Deriver = rename(c.StorePath), rename(c.Deriver)
		n.Patches, n.DependsOn = renameAll(c.Patches), renameAll(c.DependsOn)
		if c.NarHash != "" {
			sum := sha256.Sum256([]byte(n.StorePath))
			n.NarHash = hex.EncodeToString(sum[:])
		}
		if c.Name == "busybox" {
			n.NarSize = 1
		}
		h.Components = append(h.Components, &n)
	}
	h.Roots = sortedUnique(h.Roots)
	h.sort()
	return h
}

// sbomUtility returns the sbom-utility binary, built by hack/go-tool.sh.
func sbomUtility(t *testing.T) string {
	t.Helper()
	return goTool(t, "github.com/CycloneDX/sbom-utility")
}

// jsonSchemaTool returns hack/tools/sbomutility's JSON Schema validator.
func jsonSchemaTool(t *testing.T) string {
	t.Helper()
	return goTool(t, "github.com/kix-project/kix/hack/tools/sbomutility/jsonschema")
}

var toolBuilds sync.Map // package -> result of building it

type toolBuild struct {
	once sync.Once
	path string
	err  error
}

func goTool(t *testing.T, pkg string) string {
	t.Helper()
	v, _ := toolBuilds.LoadOrStore(pkg, &toolBuild{})
	b := v.(*toolBuild)
	b.once.Do(func() {
		cmd := exec.Command(filepath.Join(fixture.Root(), "hack", "go-tool.sh"), "hack/tools/sbomutility", pkg)
		cmd.Env = append(os.Environ(), "GONOSUMDB=github.com/CycloneDX/sbom-utility")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			b.err = err
			b.path = stderr.String()
			return
		}
		b.path = strings.TrimSpace(string(out))
	})
	if b.err != nil {
		testenv.Missing(t, "building "+pkg+" with hack/go-tool.sh: "+b.err.Error()+"\n"+b.path)
	}
	return b.path
}

// validate runs sbom-utility on a document: nil if it is valid, else its
// report.
func validate(t *testing.T, doc []byte) error {
	t.Helper()
	file := filepath.Join(t.TempDir(), "sbom.json")
	if err := os.WriteFile(file, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sbomUtility(t), "validate", "-i", file, "-q")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return &toolError{err: err, out: string(out)}
	}
	return nil
}

type toolError struct {
	err error
	out string
}

func (e *toolError) Error() string { return e.err.Error() + "\n" + e.out }

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got); if the change is intended, run `go test ./internal/sbom -update`:\n%s", file, diff)
	}
}
