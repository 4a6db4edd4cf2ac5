package image

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kix-project/kix/internal/nix"
)

const mib = 1 << 20

// closureOf builds PathInfos from "name size refs..." lines.
func closureOf(specs map[string]struct {
	size uint64
	refs []string
}) []*nix.PathInfo {
	var out []*nix.PathInfo
	for name, s := range specs {
		var refs []string
		for _, r := range s.refs {
			refs = append(refs, storePath(r))
		}
		out = append(out, &nix.PathInfo{Path: storePath(name), NarSize: s.size, References: refs})
	}
	nix.SortPathInfos(out)
	return out
}

func storePath(name string) string {
	return fmt.Sprintf("/nix/store/%032d-%s", 0, name)
}

func names(groups [][]*nix.PathInfo) [][]string {
	var out [][]string
	for _, g := range groups {
		var layer []string
		for _, p := range g {
			layer = append(layer, nix.NamePart(p.Path))
		}
		out = append(out, layer)
	}
	return out
}

type node = struct {
	size uint64
	refs []string
}

// The worked example from the package documentation.
var docExample = map[string]node{
	"app":    {1 * mib, []string{"libfoo", "tzdata", "app"}},
	"libfoo": {2 * mib, []string{"glibc"}},
	"glibc":  {30 * mib, []string{"glibc"}},
	"tzdata": {4 * mib, nil},
}

func TestGroup(t *testing.T) {
	tests := []struct {
		name    string
		closure map[string]node
		budget  int
		want    [][]string
	}{
		{"doc example", docExample, 3, [][]string{{"glibc"}, {"tzdata"}, {"app", "libfoo"}}},
		{"budget covers every path", docExample, 4, [][]string{{"glibc"}, {"tzdata"}, {"libfoo"}, {"app"}}},
		{"generous budget", docExample, 100, [][]string{{"glibc"}, {"tzdata"}, {"libfoo"}, {"app"}}},
		{"one layer", docExample, 1, [][]string{{"app", "glibc", "libfoo", "tzdata"}}},
		{"zero budget means one layer", docExample, 0, [][]string{{"app", "glibc", "libfoo", "tzdata"}}},
		{"single path", map[string]node{"hello": {10, nil}}, 100, [][]string{{"hello"}}},
		{
			// A small library everything uses outweighs a bigger leaf.
			"popular beats big",
			map[string]node{
				"a":    {1 * mib, []string{"libc", "big"}},
				"b":    {1 * mib, []string{"libc"}},
				"c":    {1 * mib, []string{"libc"}},
				"d":    {1 * mib, []string{"libc"}},
				"libc": {5 * mib, nil},
				"big":  {8 * mib, nil},
			},
			2,
			[][]string{{"libc"}, {"a", "b", "big", "c", "d"}},
		},
		{
			"equal weights break ties by path",
			map[string]node{"x": {1, nil}, "y": {1, nil}, "z": {1, nil}},
			2,
			[][]string{{"x"}, {"y", "z"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := names(Group(closureOf(tt.closure), tt.budget))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Group (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGroupPutsEveryPathInExactlyOneLayer(t *testing.T) {
	// A chain of 300 paths, each depending on the next, under budgets
	// from 1 to 400.
	chain := map[string]node{}
	for i := 0; i < 300; i++ {
		var refs []string
		if i+1 < 300 {
			refs = []string{fmt.Sprintf("p%03d", i+1)}
		}
		chain[fmt.Sprintf("p%03d", i)] = node{uint64(1000 + i), refs}
	}
	closure := closureOf(chain)
	for _, budget := range []int{1, 2, 50, 100, 299, 300, 400} {
		groups := Group(closure, budget)
		if want := min(budget, len(closure)); len(groups) != want {
			t.Errorf("budget %d: %d layers, want %d", budget, len(groups), want)
		}
		seen := map[string]int{}
		for _, g := range groups {
			for _, p := range g {
				seen[p.Path]++
			}
		}
		for _, p := range closure {
			if seen[p.Path] != 1 {
				t.Errorf("budget %d: %s is in %d layers", budget, p.Path, seen[p.Path])
			}
		}
	}
}
