package catalog

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/test/fixture"
	"github.com/kix-project/kix/test/testenv"
)

func TestReadAndObjects(t *testing.T) {
	blocks, err := Read(context.Background(), filepath.Join(fixture.Dir(), "catalog.nix"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range blocks {
		got = append(got, b.Attribute+"="+b.Name+"@"+b.Version)
		if _, err := os.Stat(b.Manifests); err != nil {
			t.Errorf("%s: manifests not built: %v", b.Attribute, err)
		}
	}
	want := "broken=broken@0.1 fussy=fussy@0.1 hello-web=hello-web@1.0 hello-web-2=hello-web@2.0"
	if strings.Join(got, " ") != want {
		t.Errorf("blocks %v, want %s", got, want)
	}
	objs := Objects(blocks, "shop", "/nix/store/00000000000000000000000000000000-src/catalog.nix")
	if len(objs) != 4 {
		t.Fatalf("%d objects", len(objs))
	}
	second := objs[3]
	if second.GetName() != "hello-web-2.0" || second.GetLabels()[LabelCatalog] != "shop" || second.GetLabels()[LabelVersion] != "2.0" {
		t.Errorf("object %s labels %v", second.GetName(), second.GetLabels())
	}
	if attr, _, _ := unstructured.NestedString(second.Object, "spec", "source", "attribute"); attr != "hello-web-2" {
		t.Errorf("source attribute %q", attr)
	}
	if _, found, _ := unstructured.NestedString(objs[0].Object, "spec", "source", "file"); found {
		t.Error("a block without customize has a source")
	}
}

func TestCustomize(t *testing.T) {
	ctx := context.Background()
	src, err := Publishable(ctx, filepath.Join(fixture.Dir(), "catalog.nix"), "")
	if err != nil {
		t.Fatal(err)
	}
	path, err := Customize(ctx, v1alpha1.BlockSource{File: src, Attribute: "hello-web"}, []byte(`{"greeting":"Hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var objs []map[string]any
	if err := json.Unmarshal(data, &objs); err != nil || objs[0]["data"].(map[string]any)["greeting"] != "Hi" {
		t.Errorf("customised manifests %s: %v", data, err)
	}
	_, err = Customize(ctx, v1alpha1.BlockSource{File: src, Attribute: "fussy"}, []byte(`{}`))
	if err == nil || !strings.Contains(err.Error(), "fussy: values must set size") {
		t.Errorf("values the block refuses: %v", err)
	}
	if _, err := Customize(ctx, v1alpha1.BlockSource{File: src, Attribute: "fussy"}, []byte(`{`)); err == nil {
		t.Error("values that are not JSON were accepted")
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The published source holds what the catalogue imports from beside and
// above it, within its git work tree, and not what git ignores.
func TestPublishableCopiesTheSourceTree(t *testing.T) {
	ctx := context.Background()
	git := testenv.LookPath(t, "git")
	repo := t.TempDir()
	write(t, filepath.Join(repo, "lib", "greeting.nix"), `"hello"`)
	write(t, filepath.Join(repo, "blocks", "catalog.nix"), `{ b = { version = "1"; manifests = builtins.toFile "m.json" (import ../lib/greeting.nix); }; }`)
	write(t, filepath.Join(repo, "blocks", "notes.txt"), "untracked, kept")
	write(t, filepath.Join(repo, "secret.key"), "ignored")
	write(t, filepath.Join(repo, ".gitignore"), "secret.key\n")
	for _, args := range [][]string{{"init", "-q"}, {"add", "lib", "blocks/catalog.nix", ".gitignore"}} {
		if out, err := exec.Command(git, append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	src, err := Publishable(ctx, filepath.Join(repo, "blocks", "catalog.nix"), "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(src, "/nix/store/") || !strings.HasSuffix(src, "-kix-catalog-source/blocks/catalog.nix") {
		t.Fatalf("source %s", src)
	}
	root := strings.TrimSuffix(src, "/blocks/catalog.nix")
	for path, want := range map[string]bool{"lib/greeting.nix": true, "blocks/notes.txt": true, "secret.key": false, ".git": false} {
		if _, err := os.Stat(filepath.Join(root, path)); (err == nil) != want {
			t.Errorf("%s in the published source: %v, want %v", path, err == nil, want)
		}
	}

	// Outside git: the catalogue's folder, or the root given.
	plain := t.TempDir()
	write(t, filepath.Join(plain, "a", "catalog.nix"), "{ }")
	write(t, filepath.Join(plain, "a", "b.nix"), "{ }")
	src, err = Publishable(ctx, filepath.Join(plain, "a", "catalog.nix"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(src), "b.nix")); err != nil {
		t.Errorf("the catalogue's folder was not copied whole: %v", err)
	}
	if _, err := Publishable(ctx, filepath.Join(plain, "a", "catalog.nix"), filepath.Join(plain, "elsewhere")); err == nil || !strings.Contains(err.Error(), "outside its source tree") {
		t.Errorf("a root that does not hold the catalogue: %v", err)
	}
}

func TestReadNamesWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{
		`[ ]`:          "a catalogue is an attrset of blocks, not a list",
		`{ a = "x"; }`: "block a is a string, not an attrset",
		`{ b = { manifests = builtins.toFile "m.json" "[]"; }; }`: "block b has no version",
		`{ c = { version = "1"; }; }`:                             "block c has no manifests",
	} {
		file := filepath.Join(dir, "catalog.nix")
		write(t, file, content)
		if _, err := Read(context.Background(), file); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", content, err, want)
		}
	}
}
