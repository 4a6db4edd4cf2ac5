package eval

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ImageRefs returns the distinct string values in objects that start with
// prefix ("nix.internal/"), sorted: the images served from store paths.
func ImageRefs(objs []*unstructured.Unstructured, prefix string) []string {
	var refs []string
	for _, o := range objs {
		walkStrings(o.Object, func(s string) string {
			if strings.HasPrefix(s, prefix) {
				refs = append(refs, s)
			}
			return s
		})
	}
	slices.Sort(refs)
	return slices.Compact(refs)
}

// RewriteImages replaces every string value in objects that rewrite maps
// to something else, and returns how many it replaced.
func RewriteImages(objs []*unstructured.Unstructured, rewrite map[string]string) int {
	n := 0
	for _, o := range objs {
		walkStrings(o.Object, func(s string) string {
			if r, ok := rewrite[s]; ok {
				n++
				return r
			}
			return s
		})
	}
	return n
}

// walkStrings calls f for every string value (not key) and stores what it
// returns.
func walkStrings(v any, f func(string) string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok {
				x[k] = f(s)
			} else {
				walkStrings(e, f)
			}
		}
	case []any:
		for i, e := range x {
			if s, ok := e.(string); ok {
				x[i] = f(s)
			} else {
				walkStrings(e, f)
			}
		}
	}
}
