package evaluation

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/resource"
)

// number is a JSON number as found in unstructured content: an exact
// integer or a float.
type number struct {
	i     int64
	f     float64
	isInt bool
}

func (n number) float() float64 {
	if n.isInt {
		return float64(n.i)
	}
	return n.f
}

// toNumber accepts the numeric types unstructured content and JSON
// decoding produce.
func toNumber(v any) (number, bool) {
	switch n := v.(type) {
	case int64:
		return number{i: n, isInt: true}, true
	case float64:
		return number{f: n}, true
	case int:
		return number{i: int64(n), isInt: true}, true
	case int32:
		return number{i: int64(n), isInt: true}, true
	case float32:
		return number{f: float64(n)}, true
	case uint64:
		if n > math.MaxInt64 {
			return number{f: float64(n)}, true
		}
		return number{i: int64(n), isInt: true}, true
	case uint32:
		return number{i: int64(n), isInt: true}, true
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return number{i: i, isInt: true}, true
		}
		if f, err := n.Float64(); err == nil {
			return number{f: f}, true
		}
	}
	return number{}, false
}

// appendNumber renders n as encoding/json does: integers exactly, floats
// in the shortest form that reads back the same (3, 1.5, 1e+21).
func appendNumber(b []byte, n number) []byte {
	if n.isInt {
		return strconv.AppendInt(b, n.i, 10)
	}
	f := n.f
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 → 1e-7, as encoding/json writes it.
		if l := len(b); l >= 4 && b[l-4] == 'e' && b[l-3] == '-' && b[l-2] == '0' {
			b[l-2] = b[l-1]
			b = b[:l-1]
		}
	}
	return b
}

// appendPrimitive renders v as text: a string as it is, a number as in
// JSON, a bool as true/false, an object or list as compact JSON (what
// kubectl -o jsonpath prints). ok is false for values JSON cannot encode.
func appendPrimitive(b []byte, v any) ([]byte, bool) {
	switch t := v.(type) {
	case string:
		return append(b, t...), true
	case bool:
		return strconv.AppendBool(b, t), true
	case json.Number:
		return append(b, t...), true
	}
	if n, ok := toNumber(v); ok {
		return appendNumber(b, n), true
	}
	return appendJSON(b, v)
}

// appendJSON renders v as compact JSON with object keys sorted, without
// encoding/json's HTML escaping (dimension values are not HTML).
func appendJSON(b []byte, v any) ([]byte, bool) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return b, false
	}
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...), true
}

// parseTimestamp reads an RFC 3339 string as Unix seconds.
func parseTimestamp(v any) (int64, bool) {
	s, ok := v.(string)
	if !ok {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, false
	}
	return t.Unix(), true
}

// valueError says why a valueFrom field cannot be read; the caller adds
// the path. Its message tells the kind of the value, never the value: it
// reaches conditions and events, and the object may be anyone's.
type valueError struct{ msg string }

func (e *valueError) Error() string { return e.msg }

// The value errors are shared values, so that an aggregate keeps one
// pointer per object with an error, not a message.
var (
	errNotWhole     = &valueError{"the value is a string that is neither a whole number nor a Kubernetes quantity"}
	errFraction     = &valueError{"the value has a fraction; only whole numbers can be aggregated"}
	errOutOfRange   = &valueError{"the value is outside the int64 range"}
	errNotFinite    = &valueError{"the value is not a finite number"}
	errBool         = &valueError{"the value is a bool, not a number"}
	errObject       = &valueError{"the value is an object, not a number"}
	errList         = &valueError{"the value is a list, not a number"}
	errNotNumber    = &valueError{"the value is not a number"}
	errNotTimestamp = &valueError{`the value is not an RFC 3339 time such as "2024-01-02T15:04:05Z"`}
)

// parseInteger reads a whole number: a JSON number without a fraction, a
// string holding one ("5"), or a string holding a Kubernetes quantity that
// is a whole number ("1Gi", "2k"; "100m" has a fraction).
func parseInteger(v any) (int64, *valueError) {
	if s, ok := v.(string); ok {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
		q, err := resource.ParseQuantity(s)
		if err != nil {
			return 0, errNotWhole
		}
		i, ok := q.AsInt64()
		if !ok {
			if f := q.AsApproximateFloat64(); f != math.Trunc(f) {
				return 0, errFraction
			}
			return 0, errOutOfRange
		}
		return i, nil
	}
	n, ok := toNumber(v)
	if !ok {
		switch v.(type) {
		case bool:
			return 0, errBool
		case map[string]any:
			return 0, errObject
		case []any:
			return 0, errList
		}
		return 0, errNotNumber
	}
	if n.isInt {
		return n.i, nil
	}
	f := n.f
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return 0, errNotFinite
	case f != math.Trunc(f):
		return 0, errFraction
	case f < -(1<<63) || f >= 1<<63:
		return 0, errOutOfRange
	}
	return int64(f), nil
}

// parseTimestampValue is parseTimestamp with an error for valueFrom.
func parseTimestampValue(v any) (int64, *valueError) {
	if ts, ok := parseTimestamp(v); ok {
		return ts, nil
	}
	return 0, errNotTimestamp
}

// describe renders a value of the spec (a default) for an error message,
// shortened. Values read from objects are never described.
func describe(v any) string {
	b, ok := appendPrimitive(nil, v)
	if !ok {
		return fmt.Sprintf("%T", v)
	}
	if _, isString := v.(string); isString {
		b = strconv.AppendQuote(nil, string(b))
	}
	const maxLen = 64
	if len(b) > maxLen {
		cut := maxLen
		for cut > 0 && !utf8.RuneStart(b[cut]) {
			cut--
		}
		return string(b[:cut]) + "..."
	}
	return string(b)
}

func kindOf(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "bool"
	case map[string]any:
		return "object"
	case []any:
		return "list"
	}
	return fmt.Sprintf("%T", v)
}
