package evaluation

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

// object decodes JSON as unstructured content (int64 for integers).
func object(t testing.TB, js string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := utiljson.Unmarshal([]byte(js), &m); err != nil {
		t.Fatalf("bad test object %s: %v", js, err)
	}
	return m
}

func rawJSON(s string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(s)} }

func ptr[T any](v T) *T { return &v }

const pod = `{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {
    "name": "web-1", "namespace": "shop", "uid": "u1",
    "creationTimestamp": "2024-01-02T03:04:05Z",
    "labels": {"app": "web", "app.kubernetes.io/name": "shop-web", "tier": "front"},
    "annotations": {"note": "a<b&c"}
  },
  "spec": {
    "nodeName": "node-a", "priority": 12345678901234, "ratio": 0.25, "big": 1e21, "tiny": 0.0000001,
    "whole": 3.0, "hostNetwork": false, "nothing": null,
    "containers": [
      {"name": "app", "image": "nginx:1", "ports": [{"containerPort": 80}]},
      {"name": "side", "image": "envoy:2", "ports": [{"containerPort": 9901}, {"containerPort": 15000}]}
    ],
    "nodeSelector": {"zone": "b", "disk": "ssd"},
    "tolerations": []
  },
  "status": {
    "phase": "Running",
    "startTime": "2024-01-02T03:05:00+01:00",
    "conditions": [
      {"type": "Initialized", "status": "True"},
      {"type": "Ready", "status": "False", "lastTransitionTime": "2024-01-02T03:06:00Z"},
      {"type": "Ready", "status": "Duplicate"}
    ]
  }
}`

func TestProjection(t *testing.T) {
	obj := object(t, pod)
	tests := []struct {
		name    string
		path    string
		typ     v1alpha1.ProjectionType
		def     string // raw JSON, "" for none
		want    string
		absent  bool
		wantErr string // compile error reason
	}{
		{name: "plain dot path", path: "metadata.namespace", want: "shop"},
		{name: "braces", path: "{.metadata.namespace}", want: "shop"},
		{name: "leading dot", path: ".metadata.labels.app", want: "web"},
		{name: "braces without dot", path: "{metadata.name}", want: "web-1"},
		{name: "dollar root", path: "$.metadata.name", want: "web-1"},
		{name: "label key with dots and slash", path: "metadata.labels['app.kubernetes.io/name']", want: "shop-web"},
		{name: "label key double quoted", path: `metadata.labels["app.kubernetes.io/name"]`, want: "shop-web"},
		{name: "label key escaped", path: `metadata.labels.app\.kubernetes\.io/name`, want: "shop-web"},
		{name: "filter", path: "status.conditions[?(@.type=='Ready')].status", want: "False"},
		{name: "filter in braces", path: `{.status.conditions[?(@.type=="Initialized")].status}`, want: "True"},
		{name: "filter first match of several", path: "status.conditions[?(@.type!='Initialized')].status", want: "False"},
		{name: "filter with spaces", path: "status.conditions[?(@.type == 'Ready')].status", want: "False"},
		{name: "filter by name then wildcard", path: "spec.containers[?(@.name=='side')].ports[*].containerPort", want: "9901"},
		{name: "filter float", path: "spec.containers[?(@.ports[0].containerPort<80.5)].name", want: "app"},
		{name: "quoted key in middle", path: "metadata['labels'].tier", want: "front"},
		{name: "filter no match", path: "status.conditions[?(@.type=='Synced')].status", absent: true},
		{name: "filter numeric", path: "spec.containers[*].ports[?(@.containerPort>100)].containerPort", want: "9901"},
		{name: "filter exists", path: "status.conditions[?(@.lastTransitionTime)].type", want: "Ready"},
		{name: "index", path: "spec.containers[0].image", want: "nginx:1"},
		{name: "negative index", path: "spec.containers[-1].name", want: "side"},
		{name: "index out of range", path: "spec.containers[5].image", absent: true},
		{name: "slice", path: "spec.containers[1:].name", want: "side"},
		{name: "wildcard first", path: "spec.containers[*].name", want: "app"},
		{name: "union", path: "spec.containers[0,1].ports[1].containerPort", want: "15000"},
		{name: "recursive descent", path: "..containerPort", want: "80"},
		{name: "map wildcard sorted keys", path: "spec.nodeSelector.*", want: "ssd"},
		{name: "missing field", path: "spec.missing", absent: true},
		{name: "null field", path: "spec.nothing", absent: true},
		{name: "through a string", path: "metadata.name.first", absent: true},
		{name: "index on a map", path: "metadata[0]", absent: true},
		{name: "large integer exact", path: "spec.priority", want: "12345678901234"},
		{name: "float", path: "spec.ratio", want: "0.25"},
		{name: "whole float", path: "spec.whole", want: "3"},
		{name: "huge float", path: "spec.big", want: "1e+21"},
		{name: "tiny float", path: "spec.tiny", want: "1e-7"},
		{name: "bool", path: "spec.hostNetwork", want: "false"},
		{name: "primitive of a map is compact JSON", path: "spec.nodeSelector", want: `{"disk":"ssd","zone":"b"}`},
		{name: "primitive keeps HTML characters", path: "metadata.annotations.note", want: "a<b&c"},
		{name: "map", path: "spec.nodeSelector", typ: v1alpha1.ProjectionMap, want: `{"disk":"ssd","zone":"b"}`},
		{name: "map of wrong kind is missing", path: "metadata.name", typ: v1alpha1.ProjectionMap, absent: true},
		{name: "map wrong kind takes default", path: "metadata.name", typ: v1alpha1.ProjectionMap, def: `{"b":1,"a":2}`, want: `{"a":2,"b":1}`},
		{name: "slice", path: "spec.containers[0].ports", typ: v1alpha1.ProjectionSlice, want: `[{"containerPort":80}]`},
		{name: "empty slice", path: "spec.tolerations", typ: v1alpha1.ProjectionSlice, want: `[]`},
		{name: "slice of wrong kind", path: "spec.nodeSelector", typ: v1alpha1.ProjectionSlice, absent: true},
		{name: "timestamp", path: "metadata.creationTimestamp", typ: v1alpha1.ProjectionTimestamp, want: "1704164645"},
		{name: "timestamp with offset", path: "status.startTime", typ: v1alpha1.ProjectionTimestamp, want: "1704161100"},
		{name: "timestamp not RFC 3339", path: "metadata.name", typ: v1alpha1.ProjectionTimestamp, absent: true},
		{name: "whole object as map", path: ".", typ: v1alpha1.ProjectionMap, want: "{"},
		{name: "whole object braces", path: "{.}", typ: v1alpha1.ProjectionMap, want: "{"},
		{name: "primitive default", path: "metadata.labels.missing", def: `"none"`, want: "none"},
		{name: "primitive default for null", path: "spec.nothing", def: `"none"`, want: "none"},
		{name: "primitive number default", path: "spec.missing", def: `0`, want: "0"},
		{name: "timestamp default", path: "status.missing", typ: v1alpha1.ProjectionTimestamp, def: `"1970-01-01T00:01:00Z"`, want: "60"},
		{name: "slice default", path: "spec.missing", typ: v1alpha1.ProjectionSlice, def: `["x"]`, want: `["x"]`},
		{name: "null default is no default", path: "spec.missing", def: `null`, absent: true},
		{name: "default unused when present", path: "metadata.name", def: `"none"`, want: "web-1"},
		{name: "bad primitive default", path: "spec.x", def: `{}`, wantErr: v1alpha1.ReasonInvalidProjection},
		{name: "bad timestamp default", path: "spec.x", typ: v1alpha1.ProjectionTimestamp, def: `"yesterday"`, wantErr: v1alpha1.ReasonInvalidProjection},
		{name: "bad map default", path: "spec.x", typ: v1alpha1.ProjectionMap, def: `[]`, wantErr: v1alpha1.ReasonInvalidProjection},
		{name: "bad slice default", path: "spec.x", typ: v1alpha1.ProjectionSlice, def: `"a"`, wantErr: v1alpha1.ReasonInvalidProjection},
		{name: "default not JSON", path: "spec.x", def: `{`, wantErr: v1alpha1.ReasonInvalidProjection},
		{name: "unknown type", path: "spec.x", typ: "number", wantErr: v1alpha1.ReasonInvalidProjection},
		{name: "unterminated index", path: "spec.containers[0", wantErr: v1alpha1.ReasonInvalidProjection},
		{name: "unquoted filter text", path: "status.conditions[?(@.type==Ready)].status", wantErr: v1alpha1.ReasonInvalidProjection},
		{name: "template with two parts", path: "{.a}{.b}", wantErr: v1alpha1.ReasonInvalidProjection},
		{name: "range template", path: "{range .items[*]}{.a}{end}", wantErr: v1alpha1.ReasonInvalidProjection},
		{name: "empty path", path: " ", wantErr: v1alpha1.ReasonInvalidProjection},
		{name: "zero step", path: "spec.containers[::0]", wantErr: v1alpha1.ReasonInvalidProjection},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := v1alpha1.Projection{Name: "d", FieldPath: tt.path, Type: tt.typ}
			if tt.def != "" {
				p.Default = rawJSON(tt.def)
			}
			e, err := Compile(Spec{Projections: []v1alpha1.Projection{p}})
			if tt.wantErr != "" {
				var ce *CompileError
				if !errors.As(err, &ce) {
					t.Fatalf("Compile error = %v, want a *CompileError", err)
				}
				if ce.Reason != tt.wantErr || !strings.HasPrefix(ce.Field, "spec.projections[0].") {
					t.Fatalf("Compile error = %+v, want reason %s on spec.projections[0]", ce, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			c, err := e.Contribute(obj)
			if err != nil || !c.HasValue || c.Value != 1 {
				t.Fatalf("Contribute = %+v, %v; want a count of 1", c, err)
			}
			switch {
			case tt.absent:
				if len(c.Dimensions) != 0 {
					t.Fatalf("dimensions = %v, want none", c.Dimensions)
				}
			case len(c.Dimensions) != 1 || c.Dimensions[0].Name != "d":
				t.Fatalf("dimensions = %v, want d=%q", c.Dimensions, tt.want)
			case tt.want == "{":
				if !strings.HasPrefix(c.Dimensions[0].Value, `{"apiVersion":"v1","kind":"Pod","metadata":{`) {
					t.Fatalf("d = %q, want the whole object as JSON", c.Dimensions[0].Value)
				}
			case c.Dimensions[0].Value != tt.want:
				t.Fatalf("d = %q, want %q", c.Dimensions[0].Value, tt.want)
			}
		})
	}
}

func TestDimensionsInProjectionOrder(t *testing.T) {
	e, err := Compile(Spec{Projections: []v1alpha1.Projection{
		{Name: "ns", FieldPath: "metadata.namespace"},
		{Name: "gone", FieldPath: "spec.gone"},
		{Name: "phase", FieldPath: "status.phase"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(e.DimensionNames(), ","); got != "ns,gone,phase" {
		t.Errorf("DimensionNames = %s", got)
	}
	c, _ := e.Contribute(object(t, pod))
	want := []Dimension{{"ns", "shop"}, {"phase", "Running"}}
	if len(c.Dimensions) != 2 || c.Dimensions[0] != want[0] || c.Dimensions[1] != want[1] {
		t.Errorf("Dimensions = %v, want %v", c.Dimensions, want)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name   string
		spec   Spec
		reason string
		field  string
	}{
		{"label selector", Spec{LabelSelector: "app=(web"}, v1alpha1.ReasonInvalidSelector, "spec.labelSelector"},
		{"field selector", Spec{FieldSelector: "status.phase"}, v1alpha1.ReasonInvalidSelector, "spec.fieldSelector"},
		{"projection path", Spec{Projections: []v1alpha1.Projection{
			{Name: "a", FieldPath: "metadata.name"}, {Name: "b", FieldPath: "spec.x[?(@.a=="},
		}}, v1alpha1.ReasonInvalidProjection, "spec.projections[1].fieldPath"},
		{"dimensions field name", Spec{ProjectionsField: "spec.dimensions", Projections: []v1alpha1.Projection{
			{Name: "a", FieldPath: "{.a"},
		}}, v1alpha1.ReasonInvalidProjection, "spec.dimensions[0].fieldPath"},
		{"duplicate name", Spec{Projections: []v1alpha1.Projection{
			{Name: "a", FieldPath: "metadata.name"}, {Name: "a", FieldPath: "metadata.namespace"},
		}}, v1alpha1.ReasonInvalidProjection, "spec.projections[1].name"},
		{"empty name", Spec{Projections: []v1alpha1.Projection{{FieldPath: "metadata.name"}}},
			v1alpha1.ReasonInvalidProjection, "spec.projections[0].name"},
		{"valueFrom path", Spec{ValueFrom: &v1alpha1.ValueFrom{FieldPath: "spec.replicas]"}},
			v1alpha1.ReasonInvalidValueFrom, "spec.valueFrom.fieldPath"},
		{"valueFrom type", Spec{ValueFrom: &v1alpha1.ValueFrom{FieldPath: "a", Type: "float"}},
			v1alpha1.ReasonInvalidValueFrom, "spec.valueFrom.type"},
		{"valueFrom aggregation", Spec{ValueFrom: &v1alpha1.ValueFrom{FieldPath: "a", Aggregation: "avg"}},
			v1alpha1.ReasonInvalidValueFrom, "spec.valueFrom.aggregation"},
		{"valueFrom integer default", Spec{ValueFrom: &v1alpha1.ValueFrom{FieldPath: "a", Default: ptr("1.5")}},
			v1alpha1.ReasonInvalidValueFrom, "spec.valueFrom.default"},
		{"valueFrom timestamp default", Spec{ValueFrom: &v1alpha1.ValueFrom{FieldPath: "a", Type: v1alpha1.ValueTimestamp, Default: ptr("0")}},
			v1alpha1.ReasonInvalidValueFrom, "spec.valueFrom.default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.spec)
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile error = %v, want a *CompileError", err)
			}
			if ce.Reason != tt.reason || ce.Field != tt.field {
				t.Errorf("got reason %s field %s, want %s %s", ce.Reason, ce.Field, tt.reason, tt.field)
			}
			if !strings.HasPrefix(ce.Error(), tt.field+": ") || len(ce.Message) < 20 {
				t.Errorf("Error() = %q: want the field and an explanation", ce.Error())
			}
			t.Log(ce.Error())
		})
	}
}

func TestMatches(t *testing.T) {
	running := object(t, pod)
	pending := object(t, `{"metadata": {"name": "db-0", "namespace": "data", "labels": {"app": "db"}},
		"spec": {"nodeName": "node-b", "replicas": 3}, "status": {"phase": "Pending"}}`)
	bare := object(t, `{"metadata": {"name": "bare"}}`)
	tests := []struct {
		name string
		spec Spec
		want [3]bool // running, pending, bare
	}{
		{"everything", Spec{}, [3]bool{true, true, true}},
		{"namespace", Spec{Namespace: "shop"}, [3]bool{true, false, false}},
		{"label equals", Spec{LabelSelector: "app=web"}, [3]bool{true, false, false}},
		{"label not equals", Spec{LabelSelector: "app!=web"}, [3]bool{false, true, true}},
		{"label set", Spec{LabelSelector: "app in (web,db),tier"}, [3]bool{true, false, false}},
		{"label not exists", Spec{LabelSelector: "!tier"}, [3]bool{false, true, true}},
		{"label key with dots", Spec{LabelSelector: "app.kubernetes.io/name=shop-web"}, [3]bool{true, false, false}},
		{"field status.phase", Spec{FieldSelector: "status.phase=Running"}, [3]bool{true, false, false}},
		{"field double equals", Spec{FieldSelector: "status.phase==Pending"}, [3]bool{false, true, false}},
		{"field not equals matches missing", Spec{FieldSelector: "status.phase!=Running"}, [3]bool{false, true, true}},
		{"field metadata.name", Spec{FieldSelector: "metadata.name=db-0"}, [3]bool{false, true, false}},
		{"field spec.nodeName and namespace", Spec{FieldSelector: "spec.nodeName=node-a,metadata.namespace=shop"}, [3]bool{true, false, false}},
		{"field number", Spec{FieldSelector: "spec.replicas=3"}, [3]bool{false, true, false}},
		{"field missing equals empty", Spec{FieldSelector: "spec.nodeName="}, [3]bool{false, false, true}},
		{"all together", Spec{Namespace: "data", LabelSelector: "app=db", FieldSelector: "status.phase!=Running"}, [3]bool{false, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Compile(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			got := [3]bool{e.Matches(running), e.Matches(pending), e.Matches(bare)}
			if got != tt.want {
				t.Errorf("Matches(running, pending, bare) = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMetadataOnly(t *testing.T) {
	tests := []struct {
		spec Spec
		want bool
	}{
		{Spec{}, true},
		{Spec{LabelSelector: "a=b", FieldSelector: "metadata.name=x", Projections: []v1alpha1.Projection{
			{Name: "ns", FieldPath: "metadata.namespace"}, {Name: "app", FieldPath: "{.metadata.labels['app']}"},
		}, ValueFrom: &v1alpha1.ValueFrom{FieldPath: "metadata.creationTimestamp", Type: v1alpha1.ValueTimestamp}}, true},
		{Spec{FieldSelector: "status.phase=Running"}, false},
		{Spec{Projections: []v1alpha1.Projection{{Name: "all", FieldPath: "."}}}, false},
		{Spec{Projections: []v1alpha1.Projection{{Name: "n", FieldPath: "..name"}}}, false},
		{Spec{ValueFrom: &v1alpha1.ValueFrom{FieldPath: "spec.replicas"}}, false},
	}
	for i, tt := range tests {
		e, err := Compile(tt.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.MetadataOnly(); got != tt.want {
			t.Errorf("case %d: MetadataOnly = %v, want %v", i, got, tt.want)
		}
	}
}

func TestValueFromContribution(t *testing.T) {
	tests := []struct {
		name      string
		vf        v1alpha1.ValueFrom
		obj       string
		want      int64
		hasValue  bool
		wantError string
	}{
		{"integer", v1alpha1.ValueFrom{FieldPath: "spec.replicas"}, `{"spec":{"replicas":3}}`, 3, true, ""},
		{"whole float", v1alpha1.ValueFrom{FieldPath: "spec.replicas"}, `{"spec":{"replicas":3.0}}`, 3, true, ""},
		{"negative", v1alpha1.ValueFrom{FieldPath: "spec.n"}, `{"spec":{"n":-7}}`, -7, true, ""},
		{"numeric string", v1alpha1.ValueFrom{FieldPath: "spec.n"}, `{"spec":{"n":"42"}}`, 42, true, ""},
		{"quantity", v1alpha1.ValueFrom{FieldPath: "spec.mem"}, `{"spec":{"mem":"1Gi"}}`, 1 << 30, true, ""},
		{"fraction", v1alpha1.ValueFrom{FieldPath: "spec.n"}, `{"metadata":{"name":"x","namespace":"y"},"spec":{"n":1.5}}`, 0, false, "has a fraction"},
		{"fractional quantity", v1alpha1.ValueFrom{FieldPath: "spec.cpu"}, `{"spec":{"cpu":"100m"}}`, 0, false, "has a fraction"},
		{"text", v1alpha1.ValueFrom{FieldPath: "spec.n"}, `{"spec":{"n":"many"}}`, 0, false, "neither a whole number"},
		{"bool", v1alpha1.ValueFrom{FieldPath: "spec.n"}, `{"spec":{"n":true}}`, 0, false, "not a number"},
		{"huge", v1alpha1.ValueFrom{FieldPath: "spec.n"}, `{"spec":{"n":1e30}}`, 0, false, "outside the int64 range"},
		{"missing", v1alpha1.ValueFrom{FieldPath: "spec.n"}, `{"spec":{}}`, 0, false, ""},
		{"null", v1alpha1.ValueFrom{FieldPath: "spec.n"}, `{"spec":{"n":null}}`, 0, false, ""},
		{"default", v1alpha1.ValueFrom{FieldPath: "spec.n", Default: ptr("5")}, `{"spec":{}}`, 5, true, ""},
		{"default for null", v1alpha1.ValueFrom{FieldPath: "spec.n", Default: ptr("5")}, `{"spec":{"n":null}}`, 5, true, ""},
		{"timestamp", v1alpha1.ValueFrom{FieldPath: "metadata.creationTimestamp", Type: v1alpha1.ValueTimestamp},
			`{"metadata":{"creationTimestamp":"2024-01-02T03:04:05Z"}}`, 1704164645, true, ""},
		{"timestamp fractional seconds", v1alpha1.ValueFrom{FieldPath: "t", Type: v1alpha1.ValueTimestamp},
			`{"t":"1970-01-01T00:00:10.9Z"}`, 10, true, ""},
		{"timestamp default", v1alpha1.ValueFrom{FieldPath: "t", Type: v1alpha1.ValueTimestamp, Default: ptr("1970-01-01T00:01:00Z")},
			`{}`, 60, true, ""},
		{"bad timestamp", v1alpha1.ValueFrom{FieldPath: "t", Type: v1alpha1.ValueTimestamp}, `{"t":"yesterday"}`, 0, false, "not an RFC 3339 time"},
		{"timestamp as number", v1alpha1.ValueFrom{FieldPath: "t", Type: v1alpha1.ValueTimestamp}, `{"t":5}`, 0, false, "not an RFC 3339 time"},
		{"filter path", v1alpha1.ValueFrom{FieldPath: "status.conditions[?(@.type=='Ready')].lastTransitionTime", Type: v1alpha1.ValueTimestamp},
			pod, 1704164760, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vf := tt.vf
			e, err := Compile(Spec{ValueFrom: &vf})
			if err != nil {
				t.Fatal(err)
			}
			c, err := e.Contribute(object(t, tt.obj))
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantError)
				}
				// The message is the spec's path and one of the fixed
				// descriptions: never the value or the object.
				fixed := []*valueError{errNotWhole, errFraction, errOutOfRange, errNotFinite, errBool, errObject, errList, errNotNumber, errNotTimestamp}
				if !slices.ContainsFunc(fixed, func(v *valueError) bool {
					return err.Error() == `spec.valueFrom.fieldPath "`+tt.vf.FieldPath+`": `+v.msg
				}) {
					t.Errorf("error %q is not the path and a fixed description", err)
				}
			} else if err != nil {
				t.Fatalf("error = %v", err)
			}
			if c.HasValue != tt.hasValue || (c.HasValue && c.Value != tt.want) {
				t.Errorf("Contribute = %+v, want value %d (has value %v)", c, tt.want, tt.hasValue)
			}
		})
	}
}

// TestPathologicalPathsStayCheap: paths whose evaluation would branch
// exponentially are cut off and count as missing instead of hanging.
func TestPathologicalPathsStayCheap(t *testing.T) {
	var nested any = map[string]any{"leaf": "x"}
	for range 40 {
		nested = []any{nested, nested}
	}
	obj := map[string]any{"a": nested}
	paths := []string{
		"a" + strings.Repeat("[0,1]", 40) + ".missing",
		"a" + strings.Repeat("[*]", 40) + ".missing",
		"..a..b..c..d..missing",
	}
	for _, path := range paths {
		e := mustCompile(t, Spec{Projections: []v1alpha1.Projection{{Name: "d", FieldPath: path}}})
		start := time.Now()
		c, err := e.Contribute(obj)
		if err != nil || len(c.Dimensions) != 0 {
			t.Errorf("%s: Contribute = %+v, %v; want the dimension missing", path, c, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: took %v", path, d)
		}
	}
	// Within budget, a deep wildcard path still finds its value.
	e := mustCompile(t, Spec{Projections: []v1alpha1.Projection{{Name: "d", FieldPath: "a" + strings.Repeat("[*]", 40) + ".leaf"}}})
	if c, _ := e.Contribute(obj); len(c.Dimensions) != 1 || c.Dimensions[0].Value != "x" {
		t.Errorf("deep wildcard = %+v, want x", c.Dimensions)
	}
}

// TestIndexesAndSlicesAtIntegerExtremes evaluates indexes, slice bounds
// and steps at the limits of int. A slice whose step overflowed the loop
// index (a[1:3:MaxInt64].b, found by fuzzing the event path) used to
// panic; every one of these must simply find the value or nothing.
func TestIndexesAndSlicesAtIntegerExtremes(t *testing.T) {
	const maxInt, minInt = "9223372036854775807", "-9223372036854775808"
	obj := map[string]any{"a": []any{
		map[string]any{}, map[string]any{}, map[string]any{"b": "last"},
	}}
	tests := []struct {
		path string
		want string // "" for missing
	}{
		{"a[1:3:" + maxInt + "].b", ""},
		{"a[0:3:" + maxInt + "].b", ""},
		{"a[2:3:" + maxInt + "].b", "last"},
		{"a[1::" + maxInt + "].b", ""},
		{"a[" + minInt + ":" + maxInt + "].b", "last"},
		{"a[" + maxInt + ":" + minInt + "].b", ""},
		{"a[" + minInt + ":].b", "last"},
		{"a[:" + minInt + "].b", ""},
		{"a[" + maxInt + "].b", ""},
		{"a[" + minInt + "].b", ""},
		{"a[-1].b", "last"},
		{"a[-3:-1:" + maxInt + "].b", ""},
		{"a[1:" + maxInt + ":2].b", ""},
		{"a[0:" + maxInt + ":2].b", "last"},
	}
	for _, tc := range tests {
		e := mustCompile(t, Spec{Projections: []v1alpha1.Projection{{Name: "d", FieldPath: tc.path}}})
		c, err := e.Contribute(obj)
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		got := ""
		if len(c.Dimensions) == 1 {
			got = c.Dimensions[0].Value
		}
		if got != tc.want {
			t.Errorf("%s = %q, want %q", tc.path, got, tc.want)
		}
	}
}
