package evaluation

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"k8s.io/client-go/util/jsonpath"
)

// fieldPath is a compiled JSONPath that selects one value of an object.
//
// The syntax is client-go's (kubectl -o jsonpath); the parse tree is turned
// into a list of ops that are walked directly on unstructured content. That
// walk does not use client-go's executor because it is not safe for
// concurrent use, allocates per step through reflection and stops with an
// error where a metric wants "missing" (an index out of range, a filter on
// a non-list).
type fieldPath struct {
	text string // as the user wrote it, for messages
	ops  []op   // empty: the object itself
	// keys are the ops' keys when every op is a key of an object (most
	// paths: metadata.labels.team), walked without the ops, which are
	// large; nil otherwise.
	keys []string
}

type opKind uint8

const (
	opField     opKind = iota // key of an object
	opIndex                   // one element of a list
	opSlice                   // [start:end:step] of a list
	opFilter                  // [?(...)] elements of a list
	opWildcard                // every child of an object or list
	opRecursive               // .. the value and all its descendant objects and lists
	opUnion                   // [a,b]: each alternative, continued by the rest of the path
	opConst                   // a literal ('text', 3, true)
)

type op struct {
	kind     opKind
	key      string
	params   [3]jsonpath.ParamsEntry // opIndex, opSlice
	filter   *filter
	union    [][]op // opUnion: alternative i followed by the rest of the path
	constant any
}

// filter is a compiled [?(left cmp right)] or [?(left)] (cmp "exists").
type filter struct {
	left, right []op
	cmp         string
}

// maxVisits bounds the values one evaluation of a path may branch into
// (elements tried by slices, filters, wildcards, recursive descent and
// unions). Real objects need far fewer; without a bound, paths such as
// "a[0,0][0,0]...x" or "..a..b..c" take time exponential in their length.
const maxVisits = 1 << 16

// first returns the first value the path selects from v, in document order
// (map keys in sorted order), and whether there is one. A path that selects
// several values (a filter matching more than one element, a wildcard, a
// slice) yields the first one for which the rest of the path exists. A path
// that would branch into more than maxVisits values finds nothing.
func (p *fieldPath) first(v any) (any, bool) {
	if p.keys != nil {
		for _, k := range p.keys {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = m[k]; !ok {
				return nil, false
			}
		}
		return v, true
	}
	budget := maxVisits
	return first(p.ops, v, &budget)
}

func first(ops []op, v any, budget *int) (any, bool) {
	for i := range ops {
		o := &ops[i]
		switch o.kind {
		case opField:
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = m[o.key]; !ok {
				return nil, false
			}
		case opIndex:
			s, ok := v.([]any)
			if !ok {
				return nil, false
			}
			idx := o.params[0].Value
			if idx < 0 {
				idx += len(s)
			}
			if idx < 0 || idx >= len(s) {
				return nil, false
			}
			v = s[idx]
		case opConst:
			v = o.constant
		case opSlice:
			s, ok := v.([]any)
			if !ok {
				return nil, false
			}
			start, end, step := sliceBounds(o.params, len(s))
			for j := start; j < end; {
				if *budget--; *budget < 0 {
					return nil, false
				}
				if r, ok := first(ops[i+1:], s[j], budget); ok {
					return r, true
				}
				// j+step could overflow for a step near the int maximum.
				if step >= end-j {
					break
				}
				j += step
			}
			return nil, false
		case opFilter:
			s, ok := v.([]any)
			if !ok {
				return nil, false
			}
			for _, e := range s {
				if *budget--; *budget < 0 {
					return nil, false
				}
				if o.filter.passes(e, budget) {
					if r, ok := first(ops[i+1:], e, budget); ok {
						return r, true
					}
				}
			}
			return nil, false
		case opWildcard:
			return firstChild(ops[i+1:], v, budget)
		case opRecursive:
			return firstDescendant(ops[i+1:], v, budget)
		case opUnion:
			for _, alt := range o.union {
				if *budget--; *budget < 0 {
					return nil, false
				}
				if r, ok := first(alt, v, budget); ok {
					return r, true
				}
			}
			return nil, false
		}
	}
	return v, true
}

// firstChild continues rest with each child of v in order.
func firstChild(rest []op, v any, budget *int) (any, bool) {
	switch c := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(c) {
			if *budget--; *budget < 0 {
				return nil, false
			}
			if r, ok := first(rest, c[k], budget); ok {
				return r, true
			}
		}
	case []any:
		for _, e := range c {
			if *budget--; *budget < 0 {
				return nil, false
			}
			if r, ok := first(rest, e, budget); ok {
				return r, true
			}
		}
	}
	return nil, false
}

// firstDescendant continues rest with v and each object or list below it,
// in pre-order, as client-go's recursive descent does.
func firstDescendant(rest []op, v any, budget *int) (any, bool) {
	if *budget--; *budget < 0 {
		return nil, false
	}
	switch c := v.(type) {
	case map[string]any:
		if len(c) == 0 {
			return nil, false
		}
		if r, ok := first(rest, v, budget); ok {
			return r, true
		}
		for _, k := range sortedKeys(c) {
			if r, ok := firstDescendant(rest, c[k], budget); ok {
				return r, true
			}
		}
	case []any:
		if len(c) == 0 {
			return nil, false
		}
		if r, ok := first(rest, v, budget); ok {
			return r, true
		}
		for _, e := range c {
			if r, ok := firstDescendant(rest, e, budget); ok {
				return r, true
			}
		}
	}
	return nil, false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sliceBounds clamps [start:end:step] to a list of length n.
func sliceBounds(p [3]jsonpath.ParamsEntry, n int) (start, end, step int) {
	start, end, step = 0, n, 1
	if p[0].Known {
		start = p[0].Value
	}
	if p[1].Known {
		end = p[1].Value
	}
	if p[2].Known {
		step = p[2].Value
	}
	if start < 0 {
		start += n
	}
	if end < 0 || (end == 0 && p[1].Derived) {
		end += n
	}
	start = max(0, min(start, n))
	end = max(0, min(end, n))
	return start, end, step
}

// passes reports whether the list element e passes the filter. Operands
// that select nothing, or values of different kinds, never pass.
func (f *filter) passes(e any, budget *int) bool {
	l, ok := first(f.left, e, budget)
	if f.cmp == "exists" || !ok {
		return ok
	}
	r, ok := first(f.right, e, budget)
	if !ok {
		return false
	}
	return compare(l, r, f.cmp)
}

// compare compares two scalars: numbers numerically (exactly when both are
// integers), strings lexically, bools for (in)equality only.
func compare(l, r any, cmp string) bool {
	if ln, ok := toNumber(l); ok {
		rn, ok := toNumber(r)
		if !ok {
			return false
		}
		if ln.isInt && rn.isInt {
			return cmpResult(cmpInts(ln.i, rn.i), cmp)
		}
		lf, rf := ln.float(), rn.float()
		if math.IsNaN(lf) || math.IsNaN(rf) {
			return cmp == "!="
		}
		return cmpResult(cmpFloats(lf, rf), cmp)
	}
	switch lv := l.(type) {
	case string:
		rv, ok := r.(string)
		return ok && cmpResult(strings.Compare(lv, rv), cmp)
	case bool:
		rv, ok := r.(bool)
		if !ok {
			return false
		}
		switch cmp {
		case "==":
			return lv == rv
		case "!=":
			return lv != rv
		}
	}
	return false
}

func cmpInts(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpFloats(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpResult(c int, cmp string) bool {
	switch cmp {
	case "==":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	}
	return false
}

// metadataOnly reports whether the path reads nothing but what a
// PartialObjectMetadata carries (apiVersion, kind, metadata).
func (p *fieldPath) metadataOnly() bool {
	if len(p.ops) == 0 || p.ops[0].kind != opField {
		return false
	}
	switch p.ops[0].key {
	case "metadata", "apiVersion", "kind":
		return true
	}
	return false
}

// pathExamples is appended to every path error so that the user sees what
// valid input looks like.
const pathExamples = `; write a JSONPath such as "metadata.namespace", "metadata.labels['app.kubernetes.io/name']", ` +
	`"status.conditions[?(@.type=='Ready')].status", "spec.containers[0].image" or "." for the whole object`

// compilePath parses a fieldPath as users write it: with or without braces
// and leading dot.
func compilePath(text string) (p fieldPath, err error) {
	p.text = text
	expr, whole, err := normalizePath(text)
	if err != nil || whole {
		return p, err
	}
	parser, err := parseJSONPath(expr)
	if err != nil {
		return p, fmt.Errorf("invalid JSONPath %q: %w%s", text, err, pathExamples)
	}
	root := parser.Root.Nodes
	if len(root) != 1 {
		return p, fmt.Errorf("JSONPath %q must be a single expression, not a template with several parts or text outside braces%s", text, pathExamples)
	}
	list, ok := root[0].(*jsonpath.ListNode)
	if !ok {
		return p, fmt.Errorf("JSONPath %q must be a single expression%s", text, pathExamples)
	}
	if p.ops, err = convert(list.Nodes, nil); err != nil {
		return p, fmt.Errorf("invalid JSONPath %q: %w%s", text, err, pathExamples)
	}
	keys := make([]string, 0, len(p.ops))
	for i := range p.ops {
		if p.ops[i].kind != opField {
			return p, nil
		}
		p.ops[i].key = intern(p.ops[i].key)
		keys = append(keys, p.ops[i].key)
	}
	if len(keys) > 0 {
		p.keys = keys
	}
	return p, nil
}

// parseJSONPath runs client-go's parser, turning a panic on odd input into
// an error: a user's typo must never crash the operator.
func parseJSONPath(expr string) (p *jsonpath.Parser, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("cannot parse: %v", r)
		}
	}()
	return jsonpath.Parse("fieldPath", expr)
}

// maxPathLen is the API's limit on fieldPath, enforced here too because
// the parser's cost grows with the length.
const maxPathLen = 1024

// normalizePath turns "metadata.name", ".metadata.name" and
// "{.metadata.name}" into the braced form client-go parses, and rewrites
// quoted keys (['app.kubernetes.io/name']) into escaped fields, because
// client-go splits a quoted key at its dots. whole reports the path ".".
func normalizePath(text string) (expr string, whole bool, err error) {
	if len(text) > maxPathLen {
		return "", false, fmt.Errorf("fieldPath is %d characters long; at most %d are allowed", len(text), maxPathLen)
	}
	s := strings.TrimSpace(text)
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	if strings.HasPrefix(s, "{") {
		return "", false, fmt.Errorf("JSONPath %q has unbalanced braces; braces are optional, as in \"{.metadata.name}\" or \"metadata.name\"%s", text, pathExamples)
	}
	switch s {
	case "":
		return "", false, fmt.Errorf("fieldPath must not be empty%s", pathExamples)
	case ".", "@", "$":
		return "", true, nil
	}
	if !strings.ContainsAny(s[:1], ".[@$") {
		s = "." + s
	}
	return "{" + rewriteQuotedKeys(s) + "}", false, nil
}

// rewriteQuotedKeys replaces ['key'] and ["key"] outside filters by .key
// with the characters client-go treats as separators escaped.
func rewriteQuotedKeys(s string) string {
	if !strings.Contains(s, "['") && !strings.Contains(s, `["`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "[?(") {
			end := filterEnd(s, i+3)
			b.WriteString(s[i:end])
			i = end
			continue
		}
		if s[i] == '[' && i+1 < len(s) && (s[i+1] == '\'' || s[i+1] == '"') {
			if key, end, ok := quotedKey(s, i+1); ok {
				b.WriteByte('.')
				for _, r := range key {
					if strings.ContainsRune(" \t\r\n.,[]$@{}\\", r) {
						b.WriteByte('\\')
					}
					b.WriteRune(r)
				}
				i = end
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// filterEnd returns the index after the ")]" closing a filter whose body
// starts at i, skipping quoted text; len(s) if there is none.
func filterEnd(s string, i int) int {
	var quote byte
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == '\\':
			i++
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == ')' && i+1 < len(s) && s[i+1] == ']':
			return i + 2
		}
	}
	return len(s)
}

// quotedKey reads a quoted key starting at the quote s[i] that is directly
// followed by "]"; end is the index after the "]".
func quotedKey(s string, i int) (key string, end int, ok bool) {
	quote := s[i]
	var b strings.Builder
	for j := i + 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '\\' && j+1 < len(s):
			j++
			b.WriteByte(s[j])
		case c == quote:
			if j+1 < len(s) && s[j+1] == ']' {
				return b.String(), j + 2, true
			}
			return "", 0, false
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, false
}

// convert turns client-go parse nodes, followed by the ops rest, into
// ops. A union continues each of its alternatives with what follows it.
func convert(nodes []jsonpath.Node, rest []op) ([]op, error) {
	var ops []op
	for i, n := range nodes {
		switch n := n.(type) {
		case *jsonpath.ListNode:
			flat := append(slices.Clip(n.Nodes), nodes[i+1:]...)
			tail, err := convert(flat, rest)
			if err != nil {
				return nil, err
			}
			return append(ops, tail...), nil
		case *jsonpath.UnionNode:
			after, err := convert(nodes[i+1:], rest)
			if err != nil {
				return nil, err
			}
			u := op{kind: opUnion}
			for _, alt := range n.Nodes {
				a, err := convert(alt.Nodes, after)
				if err != nil {
					return nil, err
				}
				u.union = append(u.union, a)
			}
			return append(ops, u), nil
		case *jsonpath.FieldNode:
			ops = append(ops, op{kind: opField, key: n.Value})
		case *jsonpath.ArrayNode:
			p := n.Params
			if p[2].Known && p[2].Value <= 0 {
				return nil, fmt.Errorf("slice step must be greater than 0")
			}
			if p[0].Known && p[1].Derived && !p[2].Known {
				ops = append(ops, op{kind: opIndex, params: p})
			} else {
				ops = append(ops, op{kind: opSlice, params: p})
			}
		case *jsonpath.FilterNode:
			f, err := convertFilter(n)
			if err != nil {
				return nil, err
			}
			ops = append(ops, op{kind: opFilter, filter: f})
		case *jsonpath.WildcardNode:
			ops = append(ops, op{kind: opWildcard})
		case *jsonpath.RecursiveNode:
			ops = append(ops, op{kind: opRecursive})
		case *jsonpath.TextNode:
			ops = append(ops, op{kind: opConst, constant: n.Text})
		case *jsonpath.IntNode:
			ops = append(ops, op{kind: opConst, constant: int64(n.Value)})
		case *jsonpath.FloatNode:
			ops = append(ops, op{kind: opConst, constant: n.Value})
		case *jsonpath.BoolNode:
			ops = append(ops, op{kind: opConst, constant: n.Value})
		case *jsonpath.IdentifierNode:
			return nil, fmt.Errorf("unexpected word %q: start fields with a dot and quote strings in filters, as in [?(@.type=='Ready')]", n.Name)
		default:
			return nil, fmt.Errorf("unsupported expression %s", n)
		}
	}
	return append(ops, rest...), nil
}

func convertFilter(n *jsonpath.FilterNode) (*filter, error) {
	switch n.Operator {
	case "==", "!=", "<", "<=", ">", ">=", "exists":
	default:
		return nil, fmt.Errorf("unsupported filter operator %q: use ==, !=, <, <=, > or >=", n.Operator)
	}
	f := &filter{cmp: n.Operator}
	var err error
	if n.Left != nil {
		if f.left, err = convert(n.Left.Nodes, nil); err != nil {
			return nil, err
		}
	}
	if n.Right != nil {
		if f.right, err = convert(n.Right.Nodes, nil); err != nil {
			return nil, err
		}
	}
	return f, nil
}
