package controllers

import (
	"fmt"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/reason"
)

// testPart returns a part of kind holding objs (region, ready), evaluated
// with the default dimensions or, when byRegion, spec.region alone.
func testPart(t *testing.T, kind string, byRegion bool, objs ...[2]string) *managedPart {
	t.Helper()
	m := &v1alpha1.ManagedMetric{}
	if byRegion {
		m.Spec.Dimensions = []v1alpha1.Projection{{Name: "region", FieldPath: "spec.region"}}
	}
	gk := schema.GroupKind{Group: "aws.example.org", Kind: kind}
	e, err := Guard{}.CompileManagedMetric(m, gk)
	if err != nil {
		t.Fatal(err)
	}
	p := &managedPart{gvk: gk.WithVersion("v1"), agg: evaluation.NewAggregate(e)}
	if !byRegion {
		p.prefix = []evaluation.Dimension{{Name: "group", Value: gk.Group}, {Name: "version", Value: "v1"}, {Name: "kind", Value: kind}}
	}
	for i, o := range objs {
		spec := map[string]any{}
		if o[0] != "" {
			spec["region"] = o[0]
		}
		obj := map[string]any{"metadata": map[string]any{"uid": fmt.Sprintf("%s-%d", kind, i)}, "spec": spec,
			"status": map[string]any{"conditions": []any{map[string]any{"type": "Ready", "status": o[1]}}}}
		p.agg.Upsert(evaluation.UID(obj), obj)
	}
	return p
}

func render(src *managedSource) []string {
	var out []string
	for _, cs := range src.Snapshot() {
		for _, s := range cs.Series {
			out = append(out, fmt.Sprintf("%s%v=%d", cs.Cluster, s.Dimensions, s.Value))
		}
	}
	slices.Sort(out)
	return out
}

func TestManagedSourceMergesKinds(t *testing.T) {
	tests := []struct {
		name      string
		byRegion  bool
		maxSeries int
		want      []string
		limited   bool
	}{
		{name: "default dimensions keep kinds apart", want: []string{
			"c[{group aws.example.org} {version v1} {kind Bucket} {ready True} {synced Unknown}]=2",
			"c[{group aws.example.org} {version v1} {kind Queue} {ready False} {synced Unknown}]=1",
			"c[{group aws.example.org} {version v1} {kind Queue} {ready True} {synced Unknown}]=1",
		}},
		{name: "spec.dimensions merge kinds", byRegion: true, want: []string{
			"c[]=1", // a queue without region: absent, not empty
			"c[{region eu}]=2",
			"c[{region us}]=1",
		}},
		{name: "merged series within the cap", byRegion: true, maxSeries: 3, want: []string{"c[]=1", "c[{region eu}]=2", "c[{region us}]=1"}},
		{name: "merged series over the cap", byRegion: true, maxSeries: 2, limited: true},
		{name: "default dimensions over the cap", maxSeries: 2, limited: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts := []*managedPart{
				testPart(t, "Bucket", tt.byRegion, [2]string{"eu", "True"}, [2]string{"us", "True"}),
				testPart(t, "Queue", tt.byRegion, [2]string{"eu", "True"}, [2]string{"", "False"}),
			}
			src := &managedSource{cluster: "c", maxSeries: tt.maxSeries}
			src.parts.Store(&parts)
			err := src.limitErr(parts)
			if tt.limited {
				if reason.Of(err, "") != v1alpha1.ReasonSeriesLimitExceeded {
					t.Fatalf("limitErr = %v, want SeriesLimitExceeded", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := render(src); !slices.Equal(got, tt.want) {
				t.Errorf("series:\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}
