package evaluation

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

// Spec is the part of a metric spec the engine needs.
type Spec struct {
	// Namespace restricts the metric to objects in this namespace; "" means
	// all namespaces.
	Namespace string
	// LabelSelector is a Kubernetes label selector ("app=web,tier!=db").
	LabelSelector string
	// FieldSelector is a Kubernetes field selector ("status.phase=Running").
	// Any dot path of the object may be used; it is read from the object in
	// memory, and a missing field reads as "".
	FieldSelector string
	// Projections are the dimensions, in order.
	Projections []v1alpha1.Projection
	// ProjectionsField is where Projections sit in the user's object, for
	// error messages; "" means "spec.projections" (ManagedMetric passes
	// "spec.dimensions").
	ProjectionsField string
	// ValueFrom makes the value come from a field; nil counts objects.
	ValueFrom *v1alpha1.ValueFrom
	// Target is the kind of the objects. Every metric kind must set it
	// when it knows it: paths that could read a core Secret's payload are
	// refused with SecretDataForbidden.
	Target schema.GroupKind
}

// CompileError is a problem with a metric spec that the user must fix.
type CompileError struct {
	// Reason is the Ready condition reason: v1alpha1.ReasonInvalidSelector,
	// ReasonInvalidProjection, ReasonInvalidValueFrom or
	// ReasonSecretDataForbidden.
	Reason string
	// Field is the offending field, for example "spec.projections[1].fieldPath".
	Field string
	// Message says what is wrong and what valid input looks like.
	Message string
}

// Error returns "<field>: <message>".
func (e *CompileError) Error() string { return e.Field + ": " + e.Message }

// Dimension is one dimension value of a series.
type Dimension struct {
	Name  string
	Value string
}

// Contribution is what one object contributes to a metric.
type Contribution struct {
	// Dimensions are the object's dimension values in projection order;
	// a projection whose path is missing, null or empty without a
	// default is absent.
	Dimensions []Dimension
	// Value is 1 without valueFrom, else the object's value. It is only
	// meaningful when HasValue is true.
	Value int64
	// HasValue is false when valueFrom's field is missing or null and has
	// no default, or cannot be read (Contribute then returns the error):
	// the object is then part of no series.
	HasValue bool
}

// Evaluator is a compiled Spec. It is immutable and safe for concurrent use.
type Evaluator struct {
	namespace string
	labels    labels.Selector // nil: everything
	fields    []fieldRequirement
	dims      []dimension
	names     []string
	value     *valueSpec // nil: count objects
	agg       v1alpha1.Aggregation
}

type fieldRequirement struct {
	path  []string
	value string
	equal bool // = and ==; false for !=
}

type dimension struct {
	name   string
	typ    v1alpha1.ProjectionType
	path   fieldPath
	def    string
	hasDef bool
}

type valueSpec struct {
	path   fieldPath
	typ    v1alpha1.ValueType
	def    int64
	hasDef bool
}

// Compile checks spec and compiles its selectors, paths and defaults. Its
// error is a *CompileError.
func Compile(spec Spec) (e *Evaluator, err error) {
	// The parsers met here (JSONPath, selectors) see arbitrary user input:
	// should one panic, the spec is reported invalid instead of the
	// reconciler retrying it forever.
	defer func() {
		if r := recover(); r != nil {
			e, err = nil, &CompileError{Reason: v1alpha1.ReasonInvalidProjection, Field: "spec",
				Message: "compiling the spec failed (an internal error of the operator); " +
					"simplify its projections, valueFrom and selectors"}
		}
	}()
	e = &Evaluator{namespace: spec.Namespace, agg: v1alpha1.AggregationSum}
	if err := e.compileSelectors(spec); err != nil {
		return nil, err
	}
	projField := spec.ProjectionsField
	if projField == "" {
		projField = "spec.projections"
	}
	seen := make(map[string]int, len(spec.Projections))
	for i, p := range spec.Projections {
		field := fmt.Sprintf("%s[%d]", projField, i)
		if p.Name == "" {
			return nil, invalidProjection(field+".name", "a projection needs a name: the dimension's attribute or label name")
		}
		if j, dup := seen[p.Name]; dup {
			return nil, invalidProjection(field+".name", fmt.Sprintf("name %q is already used by %s[%d]; dimension names must be unique", p.Name, projField, j))
		}
		seen[p.Name] = i
		d, err := compileDimension(p, field)
		if err != nil {
			return nil, err
		}
		e.dims = append(e.dims, d)
		e.names = append(e.names, p.Name)
	}
	if spec.ValueFrom != nil {
		v, err := compileValueFrom(*spec.ValueFrom)
		if err != nil {
			return nil, err
		}
		e.value = v
		if spec.ValueFrom.Aggregation != "" {
			e.agg = spec.ValueFrom.Aggregation
		}
	}
	if isSecret(spec.Target) {
		if err := e.checkSecretPaths(projField); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func invalidProjection(field, msg string) *CompileError {
	return &CompileError{Reason: v1alpha1.ReasonInvalidProjection, Field: field, Message: msg}
}

func invalidValueFrom(field, msg string) *CompileError {
	return &CompileError{Reason: v1alpha1.ReasonInvalidValueFrom, Field: field, Message: msg}
}

func (e *Evaluator) compileSelectors(spec Spec) error {
	if s := strings.TrimSpace(spec.LabelSelector); s != "" {
		sel, err := labels.Parse(s)
		if err != nil {
			return &CompileError{Reason: v1alpha1.ReasonInvalidSelector, Field: "spec.labelSelector",
				Message: fmt.Sprintf("invalid label selector %q: %v; write comma-separated terms such as \"app=web,tier!=db\", \"env in (prod,staging)\" or \"!canary\"", spec.LabelSelector, err)}
		}
		if !sel.Empty() {
			e.labels = internSelector(sel)
		}
	}
	if s := strings.TrimSpace(spec.FieldSelector); s != "" {
		sel, err := fields.ParseSelector(s)
		if err == nil {
			for _, r := range sel.Requirements() {
				if r.Field == "" {
					err = fmt.Errorf("a term has no field name")
					break
				}
				e.fields = append(e.fields, fieldRequirement{
					path:  strings.Split(r.Field, "."),
					value: r.Value,
					equal: r.Operator != selection.NotEquals,
				})
			}
		}
		if err != nil {
			return &CompileError{Reason: v1alpha1.ReasonInvalidSelector, Field: "spec.fieldSelector",
				Message: fmt.Sprintf("invalid field selector %q: %v; write comma-separated terms field=value or field!=value with dot paths, such as \"status.phase=Running,metadata.name!=foo\"", spec.FieldSelector, err)}
		}
	}
	return nil
}

func compileDimension(p v1alpha1.Projection, field string) (dimension, error) {
	d := dimension{name: p.Name, typ: p.Type}
	if d.typ == "" {
		d.typ = v1alpha1.ProjectionPrimitive
	}
	switch d.typ {
	case v1alpha1.ProjectionPrimitive, v1alpha1.ProjectionMap, v1alpha1.ProjectionSlice, v1alpha1.ProjectionTimestamp:
	default:
		return d, invalidProjection(field+".type", fmt.Sprintf("unknown type %q; use primitive, map, slice or timestamp", p.Type))
	}
	path, err := compilePath(p.FieldPath)
	if err != nil {
		return d, invalidProjection(field+".fieldPath", err.Error())
	}
	d.path = path
	if def, ok, err := decodeDefault(p.Default); err != nil {
		return d, invalidProjection(field+".default", err.Error())
	} else if ok {
		b, rendered := d.render(nil, def)
		if _, isScalar := toNumber(def); d.typ == v1alpha1.ProjectionPrimitive && !isScalar {
			switch def.(type) {
			case string, bool:
			default:
				rendered = false
			}
		}
		if !rendered {
			return d, invalidProjection(field+".default", defaultHint(d.typ, def))
		}
		d.def, d.hasDef = string(b), true
	}
	return d, nil
}

// decodeDefault decodes a projection default as unstructured content (so
// that it renders exactly like the same value found in an object). A
// missing or null default is no default.
func decodeDefault(j *apiextensionsv1.JSON) (any, bool, error) {
	if j == nil || len(j.Raw) == 0 {
		return nil, false, nil
	}
	var v any
	if err := utiljson.Unmarshal(j.Raw, &v); err != nil {
		return nil, false, fmt.Errorf("default is not valid JSON: %w", err)
	}
	return v, v != nil, nil
}

func defaultHint(typ v1alpha1.ProjectionType, v any) string {
	got := kindOf(v)
	switch typ {
	case v1alpha1.ProjectionTimestamp:
		return fmt.Sprintf("default %s is not valid for type timestamp: give an RFC 3339 time as a string, for example \"1970-01-01T00:00:00Z\"", describe(v))
	case v1alpha1.ProjectionMap:
		return fmt.Sprintf("default is a %s but type map needs a JSON object, for example {}", got)
	case v1alpha1.ProjectionSlice:
		return fmt.Sprintf("default is a %s but type slice needs a JSON list, for example []", got)
	}
	return fmt.Sprintf("default is a %s but type primitive needs a string, for example \"unknown\"", got)
}

func compileValueFrom(vf v1alpha1.ValueFrom) (*valueSpec, error) {
	v := &valueSpec{typ: vf.Type}
	if v.typ == "" {
		v.typ = v1alpha1.ValueInteger
	}
	if v.typ != v1alpha1.ValueInteger && v.typ != v1alpha1.ValueTimestamp {
		return nil, invalidValueFrom("spec.valueFrom.type", fmt.Sprintf("unknown type %q; use integer or timestamp", vf.Type))
	}
	switch vf.Aggregation {
	case "", v1alpha1.AggregationSum, v1alpha1.AggregationMax, v1alpha1.AggregationMin, v1alpha1.AggregationMean:
	default:
		return nil, invalidValueFrom("spec.valueFrom.aggregation", fmt.Sprintf("unknown aggregation %q; use sum, max, min or mean", vf.Aggregation))
	}
	path, err := compilePath(vf.FieldPath)
	if err != nil {
		return nil, invalidValueFrom("spec.valueFrom.fieldPath", err.Error())
	}
	v.path = path
	if vf.Default != nil {
		def, err := v.parse(*vf.Default)
		if err != nil {
			hint := "a whole number as a string, for example \"0\""
			if v.typ == v1alpha1.ValueTimestamp {
				hint = "an RFC 3339 time, for example \"1970-01-01T00:00:00Z\""
			}
			return nil, invalidValueFrom("spec.valueFrom.default",
				fmt.Sprintf("default %s: %v; for type %s give %s", describe(*vf.Default), err, v.typ, hint))
		}
		v.def, v.hasDef = def, true
	}
	return v, nil
}

func (v *valueSpec) parse(raw any) (int64, *valueError) {
	if v.typ == v1alpha1.ValueTimestamp {
		return parseTimestampValue(raw)
	}
	return parseInteger(raw)
}

// DimensionNames returns the projection names in order.
func (e *Evaluator) DimensionNames() []string {
	return append([]string(nil), e.names...)
}

// Aggregation returns how values combine within a series; it is sum when
// there is no valueFrom (each object then contributes 1).
func (e *Evaluator) Aggregation() v1alpha1.Aggregation { return e.agg }

// MetadataOnly reports whether the evaluator reads nothing but apiVersion,
// kind and metadata, so that a metadata-only watch is enough.
func (e *Evaluator) MetadataOnly() bool {
	for _, r := range e.fields {
		switch r.path[0] {
		case "metadata", "apiVersion", "kind":
		default:
			return false
		}
	}
	for i := range e.dims {
		if !e.dims[i].path.metadataOnly() {
			return false
		}
	}
	return e.value == nil || e.value.path.metadataOnly()
}

// Matches reports whether obj (unstructured content) is in the metric's
// namespace and matches its label and field selectors.
func (e *Evaluator) Matches(obj map[string]any) bool {
	md, _ := obj["metadata"].(map[string]any)
	if e.namespace != "" {
		if ns, _ := md["namespace"].(string); ns != e.namespace {
			return false
		}
	}
	if e.labels != nil {
		l, _ := md["labels"].(map[string]any)
		if !e.labels.Matches(labelMap(l)) {
			return false
		}
	}
	for i := range e.fields {
		r := &e.fields[i]
		if fieldEquals(obj, r.path, r.value) != r.equal {
			return false
		}
	}
	return true
}

// labelMap reads metadata.labels of unstructured content as labels.Labels.
type labelMap map[string]any

func (m labelMap) Has(key string) bool { _, ok := m.Lookup(key); return ok }

func (m labelMap) Get(key string) string { v, _ := m.Lookup(key); return v }

func (m labelMap) Lookup(key string) (string, bool) {
	v, ok := m[key].(string)
	return v, ok
}

// fieldEquals reports whether the field at the dot path, rendered as text
// ("" when missing), equals want.
func fieldEquals(obj map[string]any, path []string, want string) bool {
	var v any = obj
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return want == ""
		}
		if v, ok = m[k]; !ok {
			return want == ""
		}
	}
	switch t := v.(type) {
	case nil:
		return want == ""
	case string:
		return t == want
	}
	b, ok := appendPrimitive(nil, v)
	return ok && string(b) == want
}

// Contribute evaluates one object that Matches. A non-nil error is a
// value error for this object (its valueFrom field cannot be read); the
// object is then in no series. The error names the path and the kind of
// the value, never the value.
func (e *Evaluator) Contribute(obj map[string]any) (Contribution, error) {
	key, value, st, verr := e.appendKey(nil, obj)
	c := Contribution{Dimensions: e.decodeKey(string(key)), Value: value, HasValue: st == stateValued}
	if verr != nil {
		return c, errors.New(e.valueErrorMessage(verr))
	}
	return c, nil
}

// valueErrorMessage names the valueFrom path and what is wrong with the
// value.
func (e *Evaluator) valueErrorMessage(verr *valueError) string {
	return fmt.Sprintf("spec.valueFrom.fieldPath %q: %s", e.value.path.text, verr.msg)
}

type valueState uint8

const (
	stateValued  valueState = iota // the object is in a series
	stateMissing                   // valueFrom field missing or null, no default
	stateError                     // valueFrom field cannot be read
)

// appendKey appends obj's series key to buf and returns its value. The key
// holds each projection's rendered value: 0x00 when absent, else 0x01, a
// 4-byte big-endian length and the value. Series keys are built without
// allocating for the common cases (strings, integers, bools).
func (e *Evaluator) appendKey(buf []byte, obj map[string]any) ([]byte, int64, valueState, *valueError) {
	for i := range e.dims {
		buf = e.dims[i].appendTo(buf, obj)
	}
	if e.value == nil {
		return buf, 1, stateValued, nil
	}
	raw, ok := e.value.path.first(obj)
	if !ok || raw == nil {
		if e.value.hasDef {
			return buf, e.value.def, stateValued, nil
		}
		return buf, 0, stateMissing, nil
	}
	v, verr := e.value.parse(raw)
	if verr != nil {
		return buf, 0, stateError, verr
	}
	return buf, v, stateValued, nil
}

func (d *dimension) appendTo(buf []byte, obj map[string]any) []byte {
	mark := len(buf)
	buf = append(buf, 1, 0, 0, 0, 0)
	start := len(buf)
	ok := false
	if v, found := d.path.first(obj); found && v != nil {
		buf, ok = d.render(buf, v)
	}
	// An empty value counts as missing: Prometheus cannot tell an empty
	// label from an absent one, so two such series would collapse into
	// one sample on /metrics and one of them would be lost. Folding them
	// here aggregates them with the metric's own function everywhere.
	ok = ok && len(buf) > start
	if !ok {
		if !d.hasDef || len(d.def) == 0 {
			return append(buf[:mark], 0)
		}
		buf = append(buf[:start], d.def...)
	}
	binary.BigEndian.PutUint32(buf[mark+1:start], uint32(len(buf)-start))
	return buf
}

// render appends v rendered for the projection's type. ok is false when v
// does not have that type (a map for slice, a number for timestamp, ...):
// such a value is treated as missing. On false, buf may hold garbage past
// its original length.
func (d *dimension) render(buf []byte, v any) ([]byte, bool) {
	switch d.typ {
	case v1alpha1.ProjectionMap:
		if _, ok := v.(map[string]any); ok {
			return appendJSON(buf, v)
		}
	case v1alpha1.ProjectionSlice:
		if _, ok := v.([]any); ok {
			return appendJSON(buf, v)
		}
	case v1alpha1.ProjectionTimestamp:
		if ts, ok := parseTimestamp(v); ok {
			return strconv.AppendInt(buf, ts, 10), true
		}
	default:
		return appendPrimitive(buf, v)
	}
	return buf, false
}

// decodeKey lists the present dimensions of a series key. The values are
// substrings of key, so an interned key holds them without copies.
func (e *Evaluator) decodeKey(key string) []Dimension {
	dims := make([]Dimension, 0, len(e.dims))
	for i, off := 0, 0; i < len(e.dims) && off < len(key); i++ {
		v, present, next := keyPart(key, off)
		off = next
		if present {
			dims = append(dims, Dimension{Name: e.dims[i].name, Value: v})
		}
	}
	return dims[:len(dims):len(dims)]
}

// keyPart reads the projection value at key[off:].
func keyPart(key string, off int) (value string, present bool, next int) {
	if key[off] == 0 {
		return "", false, off + 1
	}
	n := int(key[off+1])<<24 | int(key[off+2])<<16 | int(key[off+3])<<8 | int(key[off+4])
	return key[off+5 : off+5+n], true, off + 5 + n
}

// compareKeys orders series keys by their dimension values in projection
// order; an absent value sorts before any present one.
func compareKeys(a, b string) int {
	for i, j := 0, 0; i < len(a) && j < len(b); {
		va, pa, ni := keyPart(a, i)
		vb, pb, nj := keyPart(b, j)
		switch {
		case pa != pb:
			if pa {
				return 1
			}
			return -1
		case va != vb:
			return strings.Compare(va, vb)
		}
		i, j = ni, nj
	}
	return strings.Compare(a, b)
}

// UID is the key an object is tracked by: metadata.uid, or
// "namespace/name" for objects without one (as in tests). A key longer
// than maxKeyBytes is kept as its SHA-256 digest instead.
func UID(obj map[string]any) string {
	md, _ := obj["metadata"].(map[string]any)
	if uid, _ := md["uid"].(string); uid != "" {
		return boundKey(uid)
	}
	ns, _ := md["namespace"].(string)
	name, _ := md["name"].(string)
	return boundKey(ns + "/" + name)
}

// maxKeyBytes is the longest object key kept as it is. The key is the one
// thing of an object held for as long as the object is: a real UID has 36
// bytes and a namespace/name at most 317, but a remote API server a tenant
// runs may send a UID of megabytes in every object, and the per-object
// state would then grow with the objects' size, not their number.
const maxKeyBytes = 320

// boundKey returns key, or the digest of a key over maxKeyBytes. Only a
// server that sends a key of that very form can make two of its objects
// share one, and they are its own objects, in its own watch.
func boundKey(key string) string {
	if len(key) <= maxKeyBytes {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}
