package events

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/registry"
)

var fuzzKey = registry.InformerKey{Cluster: "local", GVR: schema.GroupVersionResource{Version: "v1", Resource: "things"}}

const (
	fuzzMaxInt = "9223372036854775807"
	fuzzMinInt = "-9223372036854775808"
)

// FuzzEventPath drives random objects through the event handler into
// metrics compiled from random specs: upserts, deletes, relists and the
// fill of a joining metric, in an order the fuzzer picks. No evaluation
// may panic (the handler would recover it and disable the metric, which
// fails the test), and every metric must end up holding what one Replace
// of the surviving objects gives.
func FuzzEventPath(f *testing.F) {
	seeds := []string{"a[0]", "a[-1].b", "a[1:3:" + fuzzMaxInt + "].b", "a[" + fuzzMinInt + ":" + fuzzMaxInt + "].b",
		"a[" + fuzzMaxInt + "]", "a[" + fuzzMinInt + "]", "a[:" + fuzzMinInt + "]", "a[" + fuzzMaxInt + ":]",
		"a[?(@.b>=" + fuzzMaxInt + ")].b", "a[?(@.b<" + fuzzMinInt + ")]", "..b", "a[*].b", "a[0,-1," + fuzzMaxInt + "].b"}
	objs := []string{`{"a":[{},{},{"b":1}]}`, `{"a":[{"b":` + fuzzMaxInt + `},{"b":` + fuzzMinInt + `}]}`,
		`{"a":[{"b":1e300},{"b":-1e300}],"v":"2024-01-01T00:00:00Z"}`, `{"a":{"b":[1,2]}}`, `{"a":[]}`}
	for i, p := range seeds {
		f.Add(objs[0], objs[(i+1)%len(objs)], p, uint8(i), "a[-1].b", uint8(i), "", []byte{0, 1, 2, 3, 4, 5, 1, 0})
		f.Add(objs[i%len(objs)], objs[0], p, uint8(i+1), p, uint8(i), "", []byte{1, 9, 4, 8, 3, 0, 2, 5})
	}
	f.Fuzz(func(t *testing.T, obj1, obj2, path string, typ uint8, vfPath string, agg uint8, labelSel string, ops []byte) {
		spec := evaluation.Spec{LabelSelector: labelSel, Projections: []v1alpha1.Projection{
			{Name: "d", FieldPath: path, Type: fuzzProjectionTypes[int(typ)%len(fuzzProjectionTypes)]}}}
		if vfPath != "" {
			spec.ValueFrom = &v1alpha1.ValueFrom{FieldPath: vfPath,
				Type:        fuzzValueTypes[int(typ/8)%len(fuzzValueTypes)],
				Aggregation: fuzzAggregations[int(agg)%len(fuzzAggregations)]}
		}
		e, err := evaluation.Compile(spec)
		if err != nil {
			return
		}
		count, err := evaluation.Compile(evaluation.Spec{})
		if err != nil {
			t.Fatal(err)
		}
		var bodies []map[string]any
		for _, s := range []string{obj1, obj2} {
			var v map[string]any
			if json.Unmarshal([]byte(s), &v) != nil || v == nil {
				return
			}
			bodies = append(bodies, v)
		}
		object := func(i int, body map[string]any) map[string]any {
			o := make(map[string]any, len(body)+1)
			for k, v := range body {
				o[k] = v
			}
			o["metadata"] = map[string]any{"name": "o" + strconv.Itoa(i), "namespace": "ns", "uid": "u" + strconv.Itoa(i)}
			return o
		}

		reg := registry.New()
		h := &Handler{Registry: reg}
		var subs []*registry.Subscription
		join := func(ev *evaluation.Evaluator) *registry.Subscription {
			s := &registry.Subscription{ID: "m" + strconv.Itoa(len(subs)), Aggregate: evaluation.NewAggregate(ev),
				OnError: func(err error) { t.Fatalf("evaluation failed on the event path: %v", err) }}
			subs = append(subs, s)
			reg.Register(fuzzKey, s)
			return s
		}
		join(e)
		join(count)
		live := map[int]map[string]any{} // the objects the watch knows
		relist := func(subs []*registry.Subscription) {
			r := h.BeginRelist(fuzzKey, subs)
			for _, i := range slices.Sorted(maps.Keys(live)) {
				r.Add(live[i])
			}
			r.Finish()
		}
		relist(reg.Interested(fuzzKey))
		for n, op := range ops {
			if n >= 64 {
				break
			}
			i := int(op>>3) % 8
			switch op % 6 {
			case 0, 1:
				o := object(i, bodies[int(op)%2])
				live[i] = o
				h.Upsert(fuzzKey, o)
			case 2:
				if o, ok := live[i]; ok {
					delete(live, i)
					h.Delete(fuzzKey, o)
				}
			case 3:
				relist(reg.Interested(fuzzKey))
			case 4:
				// A metric joins the running watch and is filled alone.
				relist([]*registry.Subscription{join(e)})
			case 5:
				h.Replace(fuzzKey, slices.Collect(maps.Values(live)))
			}
		}
		var all []map[string]any
		for _, i := range slices.Sorted(maps.Keys(live)) {
			all = append(all, live[i])
		}
		for _, s := range subs {
			if !s.Active() || !s.Synced() {
				t.Fatalf("%s: active=%v synced=%v after the events", s.ID, s.Active(), s.Synced())
			}
			want := evaluation.NewAggregate(s.Aggregate.Evaluator())
			want.Replace(all)
			if got, exp := fmt.Sprint(s.Aggregate.Series()), fmt.Sprint(want.Series()); got != exp {
				t.Fatalf("%s holds %s after the events, one Replace gives %s", s.ID, got, exp)
			}
		}
		if got := subs[1].Aggregate.Series(); len(all) > 0 && (len(got) != 1 || got[0].Value != int64(len(all))) {
			t.Fatalf("count metric = %+v, want %d objects", got, len(all))
		}
	})
}

var (
	fuzzProjectionTypes = []v1alpha1.ProjectionType{"", v1alpha1.ProjectionPrimitive, v1alpha1.ProjectionMap,
		v1alpha1.ProjectionSlice, v1alpha1.ProjectionTimestamp}
	fuzzValueTypes   = []v1alpha1.ValueType{"", v1alpha1.ValueInteger, v1alpha1.ValueTimestamp}
	fuzzAggregations = []v1alpha1.Aggregation{"", v1alpha1.AggregationSum, v1alpha1.AggregationMax,
		v1alpha1.AggregationMin, v1alpha1.AggregationMean}
)
