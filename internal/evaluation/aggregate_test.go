package evaluation

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

func mustCompile(t testing.TB, spec Spec) *Evaluator {
	t.Helper()
	e, err := Compile(spec)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return e
}

// render prints series as "a=x,b=y: 3" lines, for readable comparisons.
func render(series []Series) string {
	var b strings.Builder
	for _, s := range series {
		for i, d := range s.Dimensions {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=%s", d.Name, d.Value)
		}
		fmt.Fprintf(&b, ": %d\n", s.Value)
	}
	return b.String()
}

func podObj(uid, ns, phase string, labels map[string]any) map[string]any {
	md := map[string]any{"uid": uid, "name": "pod-" + uid, "namespace": ns}
	if labels != nil {
		md["labels"] = labels
	}
	obj := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": md}
	if phase != "" {
		obj["status"] = map[string]any{"phase": phase}
	}
	return obj
}

func TestPodsByPhase(t *testing.T) {
	e := mustCompile(t, Spec{Projections: []v1alpha1.Projection{{Name: "phase", FieldPath: "status.phase"}}})
	a := NewAggregate(e)
	a.Replace([]map[string]any{
		podObj("1", "a", "Running", nil), podObj("2", "a", "Running", nil),
		podObj("3", "b", "Pending", nil), podObj("4", "b", "", nil),
	})
	want := ": 1\nphase=Pending: 1\nphase=Running: 2\n"
	if got := render(a.Series()); got != want {
		t.Fatalf("after Replace:\n%s\nwant:\n%s", got, want)
	}
	// The pending pod starts running; its series goes away.
	if !a.Upsert("3", podObj("3", "b", "Running", nil)) {
		t.Error("Upsert that moves a pod reported no change")
	}
	if a.Upsert("3", podObj("3", "b", "Running", nil)) {
		t.Error("Upsert of an unchanged pod reported a change")
	}
	a.Delete("4")
	want = "phase=Running: 3\n"
	if got := render(a.Series()); got != want {
		t.Fatalf("after events:\n%s\nwant:\n%s", got, want)
	}
	if a.Len() != 3 {
		t.Errorf("Len = %d, want 3", a.Len())
	}
}

func TestDeploymentsNewestPerNamespace(t *testing.T) {
	e := mustCompile(t, Spec{
		Projections: []v1alpha1.Projection{{Name: "namespace", FieldPath: "metadata.namespace"}},
		ValueFrom: &v1alpha1.ValueFrom{FieldPath: "metadata.creationTimestamp", Type: v1alpha1.ValueTimestamp,
			Aggregation: v1alpha1.AggregationMax},
	})
	deploy := func(uid, ns, created string) map[string]any {
		return map[string]any{"kind": "Deployment", "metadata": map[string]any{
			"uid": uid, "name": uid, "namespace": ns, "creationTimestamp": created}}
	}
	a := NewAggregate(e)
	a.Replace([]map[string]any{
		deploy("a1", "a", "2024-01-01T00:00:00Z"),
		deploy("a2", "a", "2024-01-01T00:01:00Z"),
		deploy("a3", "a", "2024-01-01T00:01:00Z"),
		deploy("b1", "b", "1970-01-01T00:00:05Z"),
	})
	want := "namespace=a: 1704067260\nnamespace=b: 5\n"
	if got := render(a.Series()); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	// Deleting one of two newest keeps the max; deleting both falls back.
	if a.Delete("a2") {
		t.Error("deleting a duplicate maximum reported a change")
	}
	if !a.Delete("a3") {
		t.Error("deleting the last maximum reported no change")
	}
	want = "namespace=a: 1704067200\nnamespace=b: 5\n"
	if got := render(a.Series()); got != want {
		t.Fatalf("after deletes got:\n%s\nwant:\n%s", got, want)
	}
}

func TestLabelProjectionWithDefault(t *testing.T) {
	e := mustCompile(t, Spec{
		LabelSelector: "tier",
		Projections: []v1alpha1.Projection{
			{Name: "app", FieldPath: "metadata.labels['app.kubernetes.io/name']", Default: rawJSON(`"unknown"`)},
			{Name: "tier", FieldPath: "{.metadata.labels.tier}"},
		},
	})
	a := NewAggregate(e)
	a.Replace([]map[string]any{
		podObj("1", "x", "", map[string]any{"app.kubernetes.io/name": "web", "tier": "front"}),
		podObj("2", "x", "", map[string]any{"tier": "front"}),
		podObj("3", "x", "", map[string]any{"tier": "back"}),
		podObj("4", "x", "", map[string]any{"app.kubernetes.io/name": "web"}), // no tier: not selected
	})
	want := "app=unknown,tier=back: 1\napp=unknown,tier=front: 1\napp=web,tier=front: 1\n"
	if got := render(a.Series()); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	// Losing the tier label moves the object out of the selector.
	if !a.Upsert("3", podObj("3", "x", "", map[string]any{})) {
		t.Error("object leaving the selector reported no change")
	}
	if a.Len() != 2 {
		t.Errorf("Len = %d, want 2", a.Len())
	}
}

// An empty value and a missing one are the same series: Prometheus
// renders both as an empty label, so keeping them apart would put two
// samples with one label set on /metrics and lose one of them.
func TestEmptyValueIsAbsent(t *testing.T) {
	for _, tt := range []struct {
		name string
		def  string
		want string
	}{
		{"no default", "", ": 2\nteam=web: 1\n"},
		{"default", `"none"`, "team=none: 2\nteam=web: 1\n"},
		{"empty default", `""`, ": 2\nteam=web: 1\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := v1alpha1.Projection{Name: "team", FieldPath: "metadata.labels.team"}
			if tt.def != "" {
				p.Default = rawJSON(tt.def)
			}
			a := NewAggregate(mustCompile(t, Spec{Projections: []v1alpha1.Projection{p}}))
			a.Replace([]map[string]any{
				podObj("1", "x", "", map[string]any{"team": ""}),
				podObj("2", "x", "", nil),
				podObj("3", "x", "", map[string]any{"team": "web"}),
			})
			if got := render(a.Series()); got != tt.want {
				t.Fatalf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestAggregations(t *testing.T) {
	values := func(vs ...any) []map[string]any {
		var objs []map[string]any
		for i, v := range vs {
			o := map[string]any{"metadata": map[string]any{"uid": fmt.Sprint(i), "name": fmt.Sprint(i)}, "spec": map[string]any{}}
			if v != "missing" {
				o["spec"].(map[string]any)["n"] = v
			}
			objs = append(objs, o)
		}
		return objs
	}
	tests := []struct {
		name   string
		vf     *v1alpha1.ValueFrom
		objs   []map[string]any
		want   string
		errors int
	}{
		{"count", nil, values(int64(5), "missing", 1.5), ": 3\n", 0},
		{"sum default", &v1alpha1.ValueFrom{FieldPath: "spec.n"}, values(int64(1), int64(2), "3"), ": 6\n", 0},
		{"max", &v1alpha1.ValueFrom{FieldPath: "spec.n", Aggregation: v1alpha1.AggregationMax}, values(int64(1), int64(-2), int64(7)), ": 7\n", 0},
		{"min", &v1alpha1.ValueFrom{FieldPath: "spec.n", Aggregation: v1alpha1.AggregationMin}, values(int64(1), int64(-2), int64(7)), ": -2\n", 0},
		{"mean floors", &v1alpha1.ValueFrom{FieldPath: "spec.n", Aggregation: v1alpha1.AggregationMean}, values(int64(1), int64(2)), ": 1\n", 0},
		{"mean floors negative", &v1alpha1.ValueFrom{FieldPath: "spec.n", Aggregation: v1alpha1.AggregationMean}, values(int64(-1), int64(-2)), ": -2\n", 0},
		{"mean exact", &v1alpha1.ValueFrom{FieldPath: "spec.n", Aggregation: v1alpha1.AggregationMean}, values(int64(-3), int64(-3)), ": -3\n", 0},
		{"mean beyond int64 sum", &v1alpha1.ValueFrom{FieldPath: "spec.n", Aggregation: v1alpha1.AggregationMean},
			values(int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64-2)), fmt.Sprintf(": %d\n", int64(math.MaxInt64-1)), 0},
		{"sum saturates", &v1alpha1.ValueFrom{FieldPath: "spec.n"}, values(int64(math.MaxInt64), int64(1)), fmt.Sprintf(": %d\n", int64(math.MaxInt64)), 0},
		{"missing is left out", &v1alpha1.ValueFrom{FieldPath: "spec.n", Aggregation: v1alpha1.AggregationMin}, values("missing", int64(4)), ": 4\n", 0},
		{"missing with default", &v1alpha1.ValueFrom{FieldPath: "spec.n", Aggregation: v1alpha1.AggregationMin, Default: ptr("-1")}, values("missing", int64(4)), ": -1\n", 0},
		{"all missing: no series", &v1alpha1.ValueFrom{FieldPath: "spec.n"}, values("missing", nil), "", 0},
		{"fraction is an object error", &v1alpha1.ValueFrom{FieldPath: "spec.n"}, values(int64(2), 2.5, "x"), ": 2\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAggregate(mustCompile(t, Spec{ValueFrom: tt.vf}))
			a.Replace(tt.objs)
			if got := render(a.Series()); got != tt.want {
				t.Errorf("series:\n%s\nwant:\n%s", got, tt.want)
			}
			n, msg := a.ObjectErrors()
			if n != tt.errors || (n > 0) != (msg != "") {
				t.Errorf("ObjectErrors = %d, %q; want %d", n, msg, tt.errors)
			}
			if a.Len() != len(tt.objs) {
				t.Errorf("Len = %d, want %d", a.Len(), len(tt.objs))
			}
		})
	}
}

func TestObjectErrorsClear(t *testing.T) {
	a := NewAggregate(mustCompile(t, Spec{ValueFrom: &v1alpha1.ValueFrom{FieldPath: "spec.n"}}))
	bad := func(uid string, v any) map[string]any {
		return map[string]any{"metadata": map[string]any{"uid": uid, "name": uid, "namespace": "ns"}, "spec": map[string]any{"n": v}}
	}
	a.Upsert("a", bad("a", 1.5))
	a.Upsert("b", bad("b", "nope"))
	// The message tells what is wrong with the latest (b), naming neither
	// the object nor its value.
	const (
		fraction = `spec.valueFrom.fieldPath "spec.n": the value has a fraction; only whole numbers can be aggregated`
		notWhole = `spec.valueFrom.fieldPath "spec.n": the value is a string that is neither a whole number nor a Kubernetes quantity`
	)
	if n, msg := a.ObjectErrors(); n != 2 || msg != notWhole {
		t.Fatalf("ObjectErrors = %d, %q; want 2 with %q", n, msg, notWhole)
	}
	if !a.Upsert("b", bad("b", int64(3))) {
		t.Error("fixing an object reported no change")
	}
	if n, msg := a.ObjectErrors(); n != 1 || msg != fraction {
		t.Fatalf("ObjectErrors = %d, %q; want 1 with %q", n, msg, fraction)
	}
	a.Delete("a")
	if n, msg := a.ObjectErrors(); n != 0 || msg != "" {
		t.Fatalf("ObjectErrors = %d, %q; want none", n, msg)
	}
}

func TestChangedOnlyWhenSeriesChange(t *testing.T) {
	a := NewAggregate(mustCompile(t, Spec{
		Projections: []v1alpha1.Projection{{Name: "ns", FieldPath: "metadata.namespace"}},
		ValueFrom:   &v1alpha1.ValueFrom{FieldPath: "spec.n", Aggregation: v1alpha1.AggregationMax},
	}))
	o := func(uid string, n int64) map[string]any {
		return map[string]any{"metadata": map[string]any{"uid": uid, "namespace": "x"}, "spec": map[string]any{"n": n}}
	}
	steps := []struct {
		op   string
		uid  string
		n    int64
		want bool
	}{
		{"upsert", "a", 5, true},  // new series
		{"upsert", "b", 3, false}, // below the max
		{"upsert", "b", 4, false}, // still below
		{"upsert", "b", 9, true},  // new max
		{"upsert", "b", 9, false}, // unchanged object
		{"delete", "a", 0, false}, // not the max
		{"delete", "zz", 0, false},
		{"delete", "b", 0, true}, // series gone
	}
	for i, s := range steps {
		var got bool
		if s.op == "upsert" {
			got = a.Upsert(s.uid, o(s.uid, s.n))
		} else {
			got = a.Delete(s.uid)
		}
		if got != s.want {
			t.Errorf("step %d %s %s %d: changed = %v, want %v", i, s.op, s.uid, s.n, got, s.want)
		}
	}
	if len(a.Series()) != 0 || a.Len() != 0 {
		t.Errorf("aggregate not empty: %v, %d objects", a.Series(), a.Len())
	}
}

// reference aggregates objs the slow, obvious way from Contribute.
func reference(e *Evaluator, objs map[string]map[string]any) string {
	groups := map[string][]int64{}
	dims := map[string][]Dimension{}
	for _, obj := range objs {
		if !e.Matches(obj) {
			continue
		}
		c, err := e.Contribute(obj)
		if err != nil || !c.HasValue {
			continue
		}
		k := fmt.Sprint(c.Dimensions)
		groups[k] = append(groups[k], c.Value)
		dims[k] = c.Dimensions
	}
	var out []Series
	for k, vs := range groups {
		var v int64
		switch e.Aggregation() {
		case v1alpha1.AggregationMax:
			v = slices.Max(vs)
		case v1alpha1.AggregationMin:
			v = slices.Min(vs)
		case v1alpha1.AggregationMean:
			var sum int64
			for _, x := range vs {
				sum += x
			}
			v = int64(math.Floor(float64(sum) / float64(len(vs))))
		default:
			for _, x := range vs {
				v += x
			}
		}
		out = append(out, Series{Dimensions: dims[k], Value: v})
	}
	slices.SortFunc(out, func(x, y Series) int {
		// Absent dimensions sort first; compare projection by projection.
		for _, name := range e.DimensionNames() {
			xv, xok := lookup(x.Dimensions, name)
			yv, yok := lookup(y.Dimensions, name)
			switch {
			case xok != yok:
				if xok {
					return 1
				}
				return -1
			case xv != yv:
				return strings.Compare(xv, yv)
			}
		}
		return 0
	})
	return render(out)
}

func lookup(dims []Dimension, name string) (string, bool) {
	for _, d := range dims {
		if d.Name == name {
			return d.Value, true
		}
	}
	return "", false
}

// TestIncrementalMatchesWholeList applies random upserts and deletes and
// checks the incremental result against Replace on a fresh aggregate and
// against a from-scratch reference.
func TestIncrementalMatchesWholeList(t *testing.T) {
	aggs := []*v1alpha1.ValueFrom{
		nil,
		{FieldPath: "spec.n"},
		{FieldPath: "spec.n", Aggregation: v1alpha1.AggregationMax},
		{FieldPath: "spec.n", Aggregation: v1alpha1.AggregationMin, Default: ptr("0")},
		{FieldPath: "spec.n", Aggregation: v1alpha1.AggregationMean},
	}
	for _, vf := range aggs {
		name := "count"
		if vf != nil {
			name = string(vf.Aggregation) + "/default=" + fmt.Sprint(vf.Default != nil)
		}
		t.Run(name, func(t *testing.T) {
			e := mustCompile(t, Spec{
				LabelSelector: "keep!=no",
				FieldSelector: "status.phase!=Gone",
				Projections: []v1alpha1.Projection{
					{Name: "ns", FieldPath: "metadata.namespace"},
					{Name: "phase", FieldPath: "status.phase"},
					{Name: "ready", FieldPath: "status.conditions[?(@.type=='Ready')].status", Default: rawJSON(`"Unknown"`)},
				},
				ValueFrom: vf,
			})
			rng := rand.New(rand.NewPCG(1, uint64(len(name))))
			randObj := func(uid string) map[string]any {
				pick := func(xs ...any) any { return xs[rng.IntN(len(xs))] }
				status := map[string]any{}
				if p := pick("Running", "Pending", "Gone", ""); p != "" {
					status["phase"] = p
				}
				if r := pick("True", "False", nil); r != nil {
					status["conditions"] = []any{map[string]any{"type": "Ready", "status": r}}
				}
				spec := map[string]any{}
				if n := pick(int64(-3), int64(0), int64(1), int64(2), int64(10), 2.5, "7", nil, "missing"); n != "missing" {
					spec["n"] = n
				}
				return map[string]any{
					"metadata": map[string]any{"uid": uid, "name": uid, "namespace": pick("a", "b", "c"),
						"labels": map[string]any{"keep": pick("yes", "no", "maybe")}},
					"spec": spec, "status": status,
				}
			}
			inc := NewAggregate(e)
			live := map[string]map[string]any{}
			for step := 0; step < 3000; step++ {
				uid := fmt.Sprint(rng.IntN(60))
				if rng.IntN(4) == 0 {
					inc.Delete(uid)
					delete(live, uid)
				} else {
					o := randObj(uid)
					inc.Upsert(uid, o)
					live[uid] = o
				}
				if step%100 != 99 {
					continue
				}
				var list []map[string]any
				for _, o := range live {
					list = append(list, o)
				}
				whole := NewAggregate(e)
				whole.Replace(list)
				got, want := render(inc.Series()), render(whole.Series())
				if got != want {
					t.Fatalf("step %d: incremental\n%s\nwhole list\n%s", step, got, want)
				}
				if ref := reference(e, live); got != ref {
					t.Fatalf("step %d: incremental\n%s\nreference\n%s", step, got, ref)
				}
				if inc.Len() != whole.Len() {
					t.Fatalf("step %d: Len %d vs %d", step, inc.Len(), whole.Len())
				}
				ni, _ := inc.ObjectErrors()
				nw, _ := whole.ObjectErrors()
				if ni != nw {
					t.Fatalf("step %d: ObjectErrors %d vs %d", step, ni, nw)
				}
				// Replace on the incremental aggregate itself must not change it.
				if inc.Replace(list) {
					t.Fatalf("step %d: Replace with the same objects reported a change", step)
				}
			}
			if len(inc.Series()) == 0 {
				t.Fatal("test generated no series")
			}
		})
	}
}

func TestReplaceDropsVanishedObjects(t *testing.T) {
	a := NewAggregate(mustCompile(t, Spec{Projections: []v1alpha1.Projection{{Name: "ns", FieldPath: "metadata.namespace"}}}))
	a.Replace([]map[string]any{podObj("1", "a", "", nil), podObj("2", "b", "", nil)})
	if !a.Replace([]map[string]any{podObj("2", "b", "", nil)}) {
		t.Error("Replace that drops a series reported no change")
	}
	if got, want := render(a.Series()), "ns=b: 1\n"; got != want {
		t.Errorf("series %q, want %q", got, want)
	}
	if !reflect.DeepEqual(a.Series(), a.Series()) {
		t.Error("Series is not stable")
	}
}

// TestConcurrentUse shares one evaluator between aggregates and one
// aggregate between writers and readers (run with -race).
func TestConcurrentUse(t *testing.T) {
	e := mustCompile(t, benchSpecs["ready-filter-max"])
	objs := benchObjects(400)
	shared := NewAggregate(e)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			own := NewAggregate(e)
			for i := w; i < len(objs); i += 4 {
				uid := UID(objs[i])
				shared.Upsert(uid, objs[i])
				own.Upsert(uid, objs[i])
				_ = shared.Series()
			}
		})
	}
	wg.Wait()
	whole := NewAggregate(e)
	whole.Replace(objs)
	if got, want := render(shared.Series()), render(whole.Series()); got != want {
		t.Errorf("concurrent upserts:\n%s\nwhole list:\n%s", got, want)
	}
}
