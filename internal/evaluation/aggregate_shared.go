package evaluation

import (
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

// ShareKey is a canonical form of everything the evaluator does with an
// object: two evaluators with the same key select the same objects and
// give them the same series and values, so aggregates of them on one
// watch may share their state (Aggregate.Attach). Specs that differ only
// in how they were written (the order of selector terms, say) may get
// different keys; they then simply do not share.
func (e *Evaluator) ShareKey() string {
	var b strings.Builder
	w := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	w(e.namespace)
	if e.labels != nil {
		w(e.labels.String())
	} else {
		w("")
	}
	b.WriteString(strconv.Itoa(len(e.fields)))
	for _, f := range e.fields {
		w(strings.Join(f.path, "."))
		w(f.value)
		b.WriteString(strconv.FormatBool(f.equal))
	}
	b.WriteString(strconv.Itoa(len(e.dims)))
	for _, d := range e.dims {
		w(d.name)
		w(string(d.typ))
		w(d.path.text)
		w(d.def)
		b.WriteString(strconv.FormatBool(d.hasDef))
	}
	if v := e.value; v != nil {
		w(v.path.text)
		w(string(v.typ))
		b.WriteString(strconv.FormatInt(v.def, 10))
		b.WriteString(strconv.FormatBool(v.hasDef))
	}
	w(string(e.agg))
	return b.String()
}

// HasFieldSelector reports whether the evaluator has a field selector.
func (e *Evaluator) HasFieldSelector() bool { return len(e.fields) > 0 }

// Namespace returns the namespace the evaluator is restricted to; "" for
// all.
func (e *Evaluator) Namespace() string { return e.namespace }

// LabelRequirements returns the terms of the label selector, all of which
// an object must meet; nil when there is none. Indexes use them to rule
// objects in or out without evaluating.
func (e *Evaluator) LabelRequirements() labels.Requirements {
	if e.labels == nil {
		return nil
	}
	reqs, _ := e.labels.Requirements()
	return reqs
}

// ObjectLabel reads the label key of unstructured content as the label
// selectors do: only a string value counts as present.
func ObjectLabel(labelMap map[string]any, key string) (string, bool) {
	v, ok := labelMap[key].(string)
	return v, ok
}

// Warm reads what an evaluation of c reads first and that never changes
// (the state's line holding its spec, the compiled projections and
// their paths) and returns a number made of it, which the caller keeps
// so that the reads are not left out. An event evaluated for several
// states cold in cache warms them all first: their loads then wait for
// memory together, instead of one state after the other (an evaluation
// takes the state's lock, which no later load may pass). It needs no
// lock: nothing it reads is ever written after the state is made.
func (c *Shared) Warm() uintptr {
	e := c.e
	n := uintptr(len(e.dims))
	for i := range e.dims {
		if keys := e.dims[i].path.keys; len(keys) > 0 {
			n += uintptr(len(keys[0]))
		}
	}
	return n
}
