package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decode applies a YAML document to c: every key must be an option's key
// (sections are mappings, options scalars or, for lists, sequences or
// comma-separated strings). Every problem is reported, by key and line.
func (c *Config) decode(b []byte) []error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return []error{&Problem{Key: "(file)", Msg: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	if len(doc.Content) == 0 {
		return nil // an empty file: the defaults
	}
	byKey := map[string]value{}
	sections := map[string]bool{}
	for _, o := range c.Options() {
		byKey[o.Key] = o.val
		for i := range o.Key {
			if o.Key[i] == '.' {
				sections[o.Key[:i]] = true
			}
		}
	}
	var errs []error
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return // "section:" with nothing under it
			}
			errs = append(errs, &Problem{Key: orTop(prefix), Line: n.Line, Msg: "want a mapping of keys"})
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if prefix != "" {
				key = prefix + "." + k.Value
			}
			if seen[key] {
				errs = append(errs, &Problem{Key: key, Line: k.Line, Msg: "given twice"})
				continue
			}
			seen[key] = true
			if sections[key] {
				walk(key, v)
				continue
			}
			val, ok := byKey[key]
			if !ok {
				errs = append(errs, &Problem{Key: key, Line: k.Line, Msg: "unknown key" + suggest(key, byKey)})
				continue
			}
			if err := setNode(val, v); err != nil {
				errs = append(errs, &Problem{Key: key, Line: v.Line, Msg: err.Error()})
			}
		}
	}
	walk("", doc.Content[0])
	return errs
}

func orTop(prefix string) string {
	if prefix == "" {
		return "(top)"
	}
	return prefix
}

// setNode sets val from a scalar or, for a list, a sequence of scalars.
func setNode(val value, n *yaml.Node) error {
	list := strings.HasPrefix(val.kind(), "list")
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		if list {
			return val.Set("")
		}
		return fmt.Errorf("no value (want a %s)", val.kind())
	case n.Kind == yaml.ScalarNode:
		return val.Set(n.Value)
	case n.Kind == yaml.SequenceNode && list:
		items := make([]string, 0, len(n.Content))
		for _, e := range n.Content {
			if e.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: want a plain value in the list", e.Line)
			}
			if strings.Contains(e.Value, ",") {
				return fmt.Errorf("%q: one item per list entry", e.Value)
			}
			items = append(items, e.Value)
		}
		return val.Set(strings.Join(items, ","))
	default:
		return fmt.Errorf("want a %s", val.kind())
	}
}

// suggest names the known key closest to a misspelt one: a key the typed
// one abbreviates (allow_nets: allow_networks), else the nearest by edits.
func suggest(key string, known map[string]value) string {
	best, bestD := "", 4
	for k := range known {
		d := distance(key, k)
		if subsequence(key, k) {
			d = 0
		}
		if d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// subsequence says whether a's bytes appear in b in order.
func subsequence(a, b string) bool {
	i := 0
	for j := 0; i < len(a) && j < len(b); j++ {
		if a[i] == b[j] {
			i++
		}
	}
	return i == len(a)
}
