package sbom

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

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
