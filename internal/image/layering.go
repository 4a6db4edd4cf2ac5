package image

import (
	"cmp"
	"slices"

	"github.com/kix-project/kix/internal/nix"
)

// DefaultLayers is the default layer budget.
const DefaultLayers = 100

// Group splits a closure into at most budget layers, as the package doc
// describes. Each path is in exactly one group; paths within a group are
// sorted. The closure must be complete (every reference present); other
// references are ignored.
func Group(closure []*nix.PathInfo, budget int) [][]*nix.PathInfo {
	if len(closure) == 0 {
		return nil
	}
	budget = max(budget, 1)
	weights := weighByPopularity(closure)
	order := slices.Clone(closure)
	slices.SortFunc(order, func(a, b *nix.PathInfo) int {
		if c := cmp.Compare(weights[b.Path], weights[a.Path]); c != 0 {
			return c
		}
		return cmp.Compare(a.Path, b.Path)
	})
	if len(order) <= budget {
		groups := make([][]*nix.PathInfo, len(order))
		for i, p := range order {
			groups[i] = []*nix.PathInfo{p}
		}
		return groups
	}
	groups := make([][]*nix.PathInfo, 0, budget)
	for _, p := range order[:budget-1] {
		groups = append(groups, []*nix.PathInfo{p})
	}
	rest := slices.Clone(order[budget-1:])
	nix.SortPathInfos(rest)
	return append(groups, rest)
}

// weighByPopularity returns (popularity+1) × NarSize for every path, where
// popularity counts the closure's paths that depend on it, directly or not.
func weighByPopularity(closure []*nix.PathInfo) map[string]uint64 {
	index := make(map[string]int, len(closure))
	for i, p := range closure {
		index[p.Path] = i
	}
	// reach[i] is the set of paths i depends on, directly or not, as a bitset.
	words := (len(closure) + 63) / 64
	reach := make([][]uint64, len(closure))
	var visit func(i int) []uint64
	visit = func(i int) []uint64 {
		if reach[i] != nil {
			return reach[i]
		}
		set := make([]uint64, words)
		reach[i] = set // a self-reference finds the set under construction
		for _, ref := range closure[i].References {
			j, ok := index[ref]
			if !ok || j == i {
				continue
			}
			set[j/64] |= 1 << (j % 64)
			for w, bits := range visit(j) {
				set[w] |= bits
			}
		}
		return set
	}
	popularity := make([]uint64, len(closure))
	for i := range closure {
		for j := range closure {
			if visit(i)[j/64]&(1<<(j%64)) != 0 {
				popularity[j]++
			}
		}
	}
	weights := make(map[string]uint64, len(closure))
	for i, p := range closure {
		weights[p.Path] = (popularity[i] + 1) * p.NarSize
	}
	return weights
}
