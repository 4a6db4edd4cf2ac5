package eval

import (
	"fmt"
	"math"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	nixlib "github.com/kix-project/kix/nix"
)

// ObjectError is an error about one object of an input: where it is and
// which object it is, as far as known.
type ObjectError struct {
	Source string // the input
	Where  string // the path to the object in the value: "[2]", "shop.Deployment.web"
	Kind   string
	Name   string
	Err    error
}

func (e *ObjectError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Where != "" {
		fmt.Fprintf(&b, ", at %s", e.Where)
	}
	if e.Kind != "" || e.Name != "" {
		fmt.Fprintf(&b, " (%s %s)", orUnknown(e.Kind), orUnknown(e.Name))
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *ObjectError) Unwrap() error { return e.Err }

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// toObjects finds the objects in an evaluated value.
func toObjects(v any, source string) ([]*unstructured.Unstructured, error) {
	c := &collector{source: source}
	if err := c.collect(normalizeNumbers(expandNamedLists(v)), ""); err != nil {
		return nil, err
	}
	return c.objects, nil
}

type collector struct {
	source  string
	objects []*unstructured.Unstructured
}

func (c *collector) errorf(where string, obj map[string]any, format string, args ...any) error {
	kind, _ := obj["kind"].(string)
	name, _, _ := unstructured.NestedString(obj, "metadata", "name")
	return &ObjectError{Source: c.source, Where: where, Kind: kind, Name: name, Err: fmt.Errorf(format, args...)}
}

func (c *collector) collect(v any, where string) error {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		for i, e := range x {
			if err := c.collect(e, fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return err
			}
		}
		return nil
	case string:
		if !strings.HasPrefix(x, "/nix/store/") {
			return &ObjectError{Source: c.source, Where: where, Err: fmt.Errorf("want an object, found the string %q", x)}
		}
		docs, err := readManifests(x)
		if err != nil {
			return &ObjectError{Source: c.source, Where: where, Err: err}
		}
		objs, err := toObjects(docs, x)
		c.objects = append(c.objects, objs...)
		return err
	case map[string]any:
		return c.collectMap(x, where)
	case document:
		in := &collector{source: x.file}
		err := in.collect(normalizeNumbers(expandNamedLists(x.value)), fmt.Sprintf("document %d", x.n))
		c.objects = append(c.objects, in.objects...)
		return err
	}
	return &ObjectError{Source: c.source, Where: where, Err: fmt.Errorf("want an object, found %T", v)}
}

func (c *collector) collectMap(m map[string]any, where string) error {
	_, hasKind := m["kind"]
	_, hasAPIVersion := m["apiVersion"]
	if !hasKind && !hasAPIVersion {
		return c.collectNested(m, where)
	}
	if kind, _ := m["kind"].(string); strings.HasSuffix(kind, "List") && m["items"] != nil {
		return c.collect(m["items"], join(where, "items"))
	}
	return c.add(m, where)
}

// collectNested reads the namespace.Kind.name shape.
func (c *collector) collectNested(m map[string]any, where string) error {
	for _, ns := range sortedKeys(m) {
		kinds, ok := m[ns].(map[string]any)
		if !ok {
			return &ObjectError{Source: c.source, Where: join(where, ns), Err: fmt.Errorf("want an object with kind and apiVersion, or namespace.Kind.name attributes; found %T", m[ns])}
		}
		for _, kind := range sortedKeys(kinds) {
			names, ok := kinds[kind].(map[string]any)
			if !ok {
				return &ObjectError{Source: c.source, Where: join(where, ns, kind), Err: fmt.Errorf("want name = { ... } attributes, found %T", kinds[kind])}
			}
			for _, name := range sortedKeys(names) {
				at := join(where, ns, kind, name)
				obj, ok := names[name].(map[string]any)
				if !ok {
					return &ObjectError{Source: c.source, Where: at, Kind: kind, Name: name, Err: fmt.Errorf("want an object, found %T", names[name])}
				}
				if err := c.add(completeNested(obj, ns, kind, name), at); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// completeNested fills in what the namespace.Kind.name shape implies.
func completeNested(obj map[string]any, ns, kind, name string) map[string]any {
	out := make(map[string]any, len(obj)+2)
	for k, v := range obj {
		out[k] = v
	}
	if _, ok := out["kind"]; !ok {
		out["kind"] = kind
	}
	if _, ok := out["apiVersion"]; !ok {
		if av, known := nixlib.APIVersion(kind); known {
			out["apiVersion"] = av
		}
	}
	meta, _ := out["metadata"].(map[string]any)
	m := make(map[string]any, len(meta)+2)
	for k, v := range meta {
		m[k] = v
	}
	if _, ok := m["name"]; !ok {
		m["name"] = name
	}
	if _, ok := m["namespace"]; !ok && ns != clusterScoped {
		m["namespace"] = ns
	}
	out["metadata"] = m
	return out
}

// clusterScoped is the namespace key of cluster-scoped objects in the
// namespace.Kind.name shape, as easykubenix writes it.
const clusterScoped = "none"

func (c *collector) add(m map[string]any, where string) error {
	kind, _ := m["kind"].(string)
	apiVersion, _ := m["apiVersion"].(string)
	name, _, _ := unstructured.NestedString(m, "metadata", "name")
	switch {
	case kind == "":
		return c.errorf(where, m, "object has no kind")
	case apiVersion == "":
		return c.errorf(where, m, "object has no apiVersion (kix knows the apiVersion of built-in kinds only; set it for %s)", kind)
	case name == "":
		return c.errorf(where, m, "object has no metadata.name")
	}
	if _, isMap := m["metadata"].(map[string]any); !isMap {
		return c.errorf(where, m, "metadata is not an object")
	}
	c.objects = append(c.objects, &unstructured.Unstructured{Object: m})
	return nil
}

// expandNamedLists replaces every attrset marked `_namedlist = true` by
// the list of its values, each with name set to its key, sorted by key.
func expandNamedLists(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = expandNamedLists(e)
		}
		return out
	case map[string]any:
		if marked, _ := x["_namedlist"].(bool); marked {
			var list []any
			for _, k := range sortedKeys(x) {
				if k == "_namedlist" {
					continue
				}
				item, ok := expandNamedLists(x[k]).(map[string]any)
				if !ok {
					item = map[string]any{"value": x[k]}
				}
				if _, has := item["name"]; !has {
					item["name"] = k
				}
				list = append(list, item)
			}
			return list
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = expandNamedLists(e)
		}
		return out
	}
	return v
}

func join(parts ...string) string {
	var nonEmpty []string
	for _, p := range parts {
		if p != "" {
			nonEmpty = append(nonEmpty, p)
		}
	}
	return strings.Join(nonEmpty, ".")
}

// normalizeNumbers turns whole float64s (how encoding/json decodes every
// number) into int64, as Kubernetes' own decoder does, so replicas: 2 is
// an integer to the code that reads it.
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeNumbers(e)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeNumbers(e)
		}
	}
	return v
}
