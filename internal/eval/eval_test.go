package eval

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kix-project/kix/test/fixture"
)

func evaluate(t *testing.T, opts Options) *Result {
	t.Helper()
	res, err := Evaluate(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// ids lists objects as Kind/namespace/name.
func ids(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
	}
	return out
}

func shopFile() string { return filepath.Join(fixture.Dir(), "deploy", "shop.nix") }

func TestNixFileWithResources(t *testing.T) {
	fixture.Build(t, "webserver") // evaluation realises it anyway; this fails early without nix
	res := evaluate(t, Options{File: shopFile(), Args: map[string]string{"version": "7"}, ArgStrs: map[string]string{"namespace": "store"}})
	want := []string{"Namespace//store", "ConfigMap/store/settings", "ConfigMap/store/worker", "Deployment/store/web", "Service/store/web"}
	if diff := cmp.Diff(want, ids(res.Objects)); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	dep := res.Objects[3]
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("containers = %v", containers)
	}
	c := containers[0].(map[string]any)
	webserver := fixture.Build(t, "webserver")
	if c["name"] != "web" || c["image"] != "nix.internal/"+strings.TrimPrefix(webserver, "/nix/store/") {
		t.Errorf("container %v: the named list should give name web and the webserver image", c)
	}
	env := c["env"].([]any)[0].(map[string]any)
	if env["name"] != "VERSION" || env["value"] != "7" {
		t.Errorf("env %v: --arg version 7 should reach it", env)
	}
	if replicas, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas"); replicas != 1 {
		t.Errorf("replicas %v is not the integer 1", dep.Object["spec"].(map[string]any)["replicas"])
	}
	// Everything the objects name is realised.
	for _, p := range []string{webserver, fixture.Build(t, "hello")} {
		if !slices.Contains(res.StorePaths, p) {
			t.Errorf("store paths %v lack %s", res.StorePaths, p)
		}
	}
}

// A derivation (or a store path) holding manifests is read.
func TestNixAttributeThatIsAManifestsDerivation(t *testing.T) {
	manifests := fixture.Build(t, "manifests")
	res := evaluate(t, Options{File: fixture.Dir(), Attr: "manifests"})
	if diff := cmp.Diff([]string{"Deployment//hello", "Deployment//web", "Service//web"}, ids(res.Objects)); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	if !slices.Contains(res.StorePaths, manifests) {
		t.Errorf("store paths %v lack %s", res.StorePaths, manifests)
	}
	if res.Source != fixture.Dir()+" (attribute manifests)" {
		t.Errorf("source %q", res.Source)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestShapes(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, file, content string
		want                []string
	}{
		{"list", "list.nix", `[ { apiVersion = "v1"; kind = "ConfigMap"; metadata.name = "a"; } ]`, []string{"ConfigMap//a"}},
		{"List kind", "list-kind.nix", `{ apiVersion = "v1"; kind = "List"; items = [ { apiVersion = "v1"; kind = "Secret"; metadata = { name = "s"; namespace = "x"; }; } ]; }`, []string{"Secret/x/s"}},
		{"one object", "one.nix", `{ apiVersion = "v1"; kind = "Namespace"; metadata.name = "n"; }`, []string{"Namespace//n"}},
		{"nested", "nested.nix", `{ none.Pod.hello.spec.containers = { _namedlist = true; hello.image = "x"; }; shop.ConfigMap.b.data.k = "v"; }`, []string{"Pod//hello", "ConfigMap/shop/b"}},
		{"nested lists", "nested-lists.nix", `[ [ { apiVersion = "v1"; kind = "ConfigMap"; metadata.name = "a"; } ] null ]`, []string{"ConfigMap//a"}},
		{"yaml", "m.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s}}\n", []string{"ConfigMap//a", "Secret//s"}},
		{"json", "m.json", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"}}`, []string{"Deployment//d"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, tt.file, tt.content)
			res := evaluate(t, Options{File: path})
			if diff := cmp.Diff(tt.want, ids(res.Objects)); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
		})
	}
	// A folder: its files in name order.
	folder := t.TempDir()
	writeFile(t, folder, "b/2.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\n")
	writeFile(t, folder, "a.json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"one"}}`)
	writeFile(t, folder, "notes.txt", "not a manifest")
	res := evaluate(t, Options{File: folder})
	if diff := cmp.Diff([]string{"ConfigMap//one", "ConfigMap//two"}, ids(res.Objects)); diff != "" {
		t.Errorf("folder (-want +got):\n%s", diff)
	}
}

func TestFlake(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "flake.nix", `{
  outputs = { self }: {
    manifests = [ { apiVersion = "v1"; kind = "ConfigMap"; metadata.name = "from-flake"; } ];
  };
}`)
	res, err := Evaluate(context.Background(), Options{File: "path:" + dir + "#manifests"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ConfigMap//from-flake"}, ids(res.Objects)); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
}

func TestErrorsNameTheFileAttributeAndObject(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		opts Options
		want []string // substrings of the error
	}{
		{"no kind", Options{File: writeFile(t, dir, "nokind.yaml", "apiVersion: v1\nmetadata: {name: x}\n")}, []string{"nokind.yaml, at document 1", "object has no kind"}},
		{"in a folder", Options{File: manifestFolder(t)}, []string{filepath.Join("folder", "2.yaml") + ", at document 2 (ConfigMap ?)", "no metadata.name"}},
		{"no name", Options{File: writeFile(t, dir, "noname.nix", `[ { apiVersion = "v1"; kind = "ConfigMap"; } ]`)}, []string{"noname.nix", "[0]", "ConfigMap", "no metadata.name"}},
		{"custom kind without apiVersion", Options{File: writeFile(t, dir, "crd.nix", `{ shop.NixImage.curl.spec.tag = "v1"; }`)}, []string{"shop.NixImage.curl", "no apiVersion", "NixImage"}},
		{"evaluation error", Options{File: writeFile(t, dir, "broken.nix", `{ a = ; }`)}, []string{"evaluating", "broken.nix", "syntax error"}},
		{"throw", Options{File: writeFile(t, dir, "throws.nix", `throw "the shop is closed"`)}, []string{"throws.nix", "the shop is closed"}},
		{"missing attribute", Options{File: shopFile(), Attr: "nope"}, []string{"shop.nix (attribute nope)", "nope"}},
		{"string instead of object", Options{File: writeFile(t, dir, "str.nix", `[ "hello" ]`)}, []string{"str.nix", "[0]", `found the string "hello"`}},
		{"bad yaml", Options{File: writeFile(t, dir, "bad.yaml", "a: [\n")}, []string{"bad.yaml", "document 1"}},
		{"args to manifests", Options{File: writeFile(t, dir, "m.yaml", "{}"), Attr: "x"}, []string{"not a Nix file"}},
		{"missing file", Options{File: filepath.Join(dir, "missing.yaml")}, []string{"missing.yaml"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Evaluate(context.Background(), tt.opts)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestObjectErrorIsAnError(t *testing.T) {
	_, err := Evaluate(context.Background(), Options{File: writeFile(t, t.TempDir(), "x.yaml", "apiVersion: v1\nkind: ConfigMap\n")})
	var oe *ObjectError
	if !errors.As(err, &oe) || oe.Kind != "ConfigMap" {
		t.Errorf("error %v is not an ObjectError for a ConfigMap", err)
	}
}

func TestEvalModules(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "base.nix", `{ config, kix, ... }: {
  kubernetes.resources.shop.Deployment.web.spec.template.spec.containers = kix.namedList {
    web.image = "nix.internal/x";
  };
}`)
	writeFile(t, dir, "sidecar.nix", `{ kix, ... }: {
  imports = [ ./base.nix ];
  kubernetes.resources.shop.Deployment.web.spec.template.spec.containers = kix.namedList {
    logger.image = "nix.internal/y";
  };
  kubernetes.objects = [ { apiVersion = "v1"; kind = "Namespace"; metadata.name = "shop"; } ];
}`)
	lib := filepath.Join(fixture.Root(), "nix")
	app := writeFile(t, dir, "app.nix", `let kix = import `+lib+` { pkgs = { writeText = builtins.toFile; }; }; in
kix.evalModules { modules = [ ./sidecar.nix { kubernetes.resources.shop.Deployment.web.spec.replicas = 2; } ]; }`)
	res := evaluate(t, Options{File: app})
	if diff := cmp.Diff([]string{"Deployment/shop/web", "Namespace//shop"}, ids(res.Objects)); diff != "" {
		t.Fatalf("objects (-want +got):\n%s", diff)
	}
	containers, _, _ := unstructured.NestedSlice(res.Objects[0].Object, "spec", "template", "spec", "containers")
	var names []string
	for _, c := range containers {
		names = append(names, c.(map[string]any)["name"].(string))
	}
	if diff := cmp.Diff([]string{"logger", "web"}, names); diff != "" {
		t.Errorf("named lists from two modules merge by name (-want +got):\n%s", diff)
	}
	if r, _, _ := unstructured.NestedInt64(res.Objects[0].Object, "spec", "replicas"); r != 2 {
		t.Errorf("replicas %d, want 2 from the inline module", r)
	}

	conflict := writeFile(t, dir, "conflict.nix", `let kix = import `+lib+` { pkgs = { writeText = builtins.toFile; }; }; in
kix.evalModules { modules = [ { kubernetes.resources.shop.Deployment.web.spec.replicas = 2; } { kubernetes.resources.shop.Deployment.web.spec.replicas = 3; } ]; }`)
	_, err := Evaluate(context.Background(), Options{File: conflict})
	if err == nil || !strings.Contains(err.Error(), "conflicting definitions of kubernetes.resources.shop.Deployment.web.spec.replicas") {
		t.Errorf("conflicting modules: %v", err)
	}
}

// manifestFolder is a folder of manifests whose second file's second
// document has no name.
func manifestFolder(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "folder")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "1.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n")
	writeFile(t, dir, "2.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")
	return dir
}
