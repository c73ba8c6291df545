package evaluation

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

var (
	fuzzProjectionTypes = []v1alpha1.ProjectionType{"", v1alpha1.ProjectionPrimitive, v1alpha1.ProjectionMap,
		v1alpha1.ProjectionSlice, v1alpha1.ProjectionTimestamp, "bogus"}
	fuzzValueTypes   = []v1alpha1.ValueType{"", v1alpha1.ValueInteger, v1alpha1.ValueTimestamp}
	fuzzAggregations = []v1alpha1.Aggregation{"", v1alpha1.AggregationSum, v1alpha1.AggregationMax,
		v1alpha1.AggregationMin, v1alpha1.AggregationMean}
)

// FuzzEvaluate compiles arbitrary paths, types, defaults and selectors and
// evaluates arbitrary JSON objects with them. Compile may fail; nothing may
// panic, and the aggregate must stay consistent.
func FuzzEvaluate(f *testing.F) {
	f.Add(pod, "status.conditions[?(@.type=='Ready')].status", uint8(0), "", "spec.priority", uint8(0), uint8(0), "app=web", "status.phase!=Pending", uint8(0))
	f.Add(pod, "metadata.labels['app.kubernetes.io/name']", uint8(1), `"x"`, "metadata.creationTimestamp", uint8(2), uint8(2), "", "", uint8(1))
	f.Add(pod, "spec.nodeSelector", uint8(2), `{}`, "spec.ratio", uint8(1), uint8(4), "", "metadata.name=web-1", uint8(0))
	f.Add(pod, "spec.containers[*].ports", uint8(3), `[]`, "spec.containers[-1:].ports[0].containerPort", uint8(0), uint8(3), "tier in (front)", "", uint8(1))
	f.Add(pod, "..containerPort", uint8(4), `"1970-01-01T00:00:00Z"`, "status.startTime", uint8(2), uint8(1), "!x", "", uint8(0))
	f.Add(`{"a":[1,[2,{"b":null}]],"c":{"d":1.5e300}}`, "{.a[1][1].b}", uint8(0), "0", "c.d", uint8(1), uint8(4), "", "a=1", uint8(1))
	f.Add(`[1,2]`, ".", uint8(3), "", ".", uint8(0), uint8(0), "", "", uint8(0))
	f.Add(`{"x":[{"y":1},{"y":"1"},{"y":true}]}`, "x[?(@.y>=1)].y", uint8(0), "", "x[0,2].y", uint8(0), uint8(2), "", "", uint8(1))
	f.Fuzz(func(t *testing.T, objJSON, path string, typ uint8, def, vfPath string, vfType, agg uint8, labelSel, fieldSel string, decoder uint8) {
		p := v1alpha1.Projection{Name: "d", FieldPath: path, Type: fuzzProjectionTypes[int(typ)%len(fuzzProjectionTypes)]}
		if def != "" {
			p.Default = &apiextensionsv1.JSON{Raw: []byte(def)}
		}
		spec := Spec{
			LabelSelector: labelSel,
			FieldSelector: fieldSel,
			Projections:   []v1alpha1.Projection{p, {Name: "same", FieldPath: path}},
		}
		if vfPath != "" {
			spec.ValueFrom = &v1alpha1.ValueFrom{
				FieldPath:   vfPath,
				Type:        fuzzValueTypes[int(vfType)%len(fuzzValueTypes)],
				Aggregation: fuzzAggregations[int(agg)%len(fuzzAggregations)],
			}
			if vfType >= 128 {
				spec.ValueFrom.Default = &def
			}
		}
		e, err := Compile(spec)
		if err != nil {
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile error %T is not a *CompileError: %v", err, err)
			}
			return
		}
		obj, ok := decodeFuzzObject(objJSON, decoder)
		if !ok {
			return
		}
		_ = e.MetadataOnly()
		matches := e.Matches(obj)
		c, cerr := e.Contribute(obj)
		if len(c.Dimensions) > 2 || (cerr != nil && c.HasValue) {
			t.Fatalf("Contribute = %+v, %v", c, cerr)
		}
		// The second projection has the same path without type or default:
		// for primitive without default both must agree.
		if (p.Type == "" || p.Type == v1alpha1.ProjectionPrimitive) && p.Default == nil && len(c.Dimensions)%2 != 0 {
			t.Fatalf("same path, different presence: %+v", c.Dimensions)
		}
		a := NewAggregate(e)
		a.Upsert("1", obj)
		a.Upsert("2", obj)
		s := a.Series()
		if matches && c.HasValue && (len(s) != 1 || !sameDims(s[0].Dimensions, c.Dimensions)) {
			t.Fatalf("Series %+v do not match contribution %+v", s, c)
		}
		if !matches && (len(s) != 0 || a.Len() != 0) {
			t.Fatalf("non-matching object in aggregate: %+v", s)
		}
		a.Delete("1")
		a.Delete("2")
		if len(a.Series()) != 0 || a.Len() != 0 {
			t.Fatalf("aggregate not empty after deletes: %+v", a.Series())
		}
		if n, _ := a.ObjectErrors(); n != 0 {
			t.Fatalf("ObjectErrors = %d after deletes", n)
		}
		a.Replace([]map[string]any{obj})
	})
}

// decodeFuzzObject decodes JSON the way unstructured content is decoded
// (int64 for integers) or as plain encoding/json does (float64, or
// json.Number). A JSON value that is not an object is wrapped in one.
func decodeFuzzObject(s string, decoder uint8) (map[string]any, bool) {
	var v any
	var err error
	switch decoder % 3 {
	case 0:
		err = utiljson.Unmarshal([]byte(s), &v)
	case 1:
		err = json.Unmarshal([]byte(s), &v)
	default:
		d := json.NewDecoder(bytes.NewReader([]byte(s)))
		d.UseNumber()
		err = d.Decode(&v)
	}
	if err != nil {
		return nil, false
	}
	if m, ok := v.(map[string]any); ok {
		return m, true
	}
	return map[string]any{"value": v}, true
}

func sameDims(a, b []Dimension) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
