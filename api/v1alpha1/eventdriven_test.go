package v1alpha1

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// eventDrivenKind is what every metric kind offers to the operator.
type eventDrivenKind interface {
	IsEventDriven(defaultMode bool) bool
	MetricName() string
}

// kinds builds each metric kind with the same metadata and spec values, so
// every case checks all four.
func kinds(meta metav1.ObjectMeta, specName string, eventDriven *bool) map[string]eventDrivenKind {
	return map[string]eventDrivenKind{
		"Metric":                 &Metric{ObjectMeta: meta, Spec: MetricSpec{Name: specName, EventDriven: eventDriven}},
		"ManagedMetric":          &ManagedMetric{ObjectMeta: meta, Spec: ManagedMetricSpec{Name: specName, EventDriven: eventDriven}},
		"FederatedMetric":        &FederatedMetric{ObjectMeta: meta, Spec: FederatedMetricSpec{Name: specName, EventDriven: eventDriven}},
		"FederatedManagedMetric": &FederatedManagedMetric{ObjectMeta: meta, Spec: FederatedManagedMetricSpec{Name: specName, EventDriven: eventDriven}},
	}
}

func TestIsEventDriven(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name        string
		annotation  *string
		spec        *bool
		defaultMode bool
		want        bool
	}{
		{name: "nothing set, default polling", want: false},
		{name: "nothing set, default event-driven", defaultMode: true, want: true},
		{name: "spec true", spec: &yes, want: true},
		{name: "spec false beats default", spec: &no, defaultMode: true, want: false},
		{name: "annotation true", annotation: strPtr("true"), want: true},
		{name: "annotation true beats spec false", annotation: strPtr("true"), spec: &no, want: true},
		{name: "annotation false beats spec true", annotation: strPtr("false"), spec: &yes, defaultMode: true, want: false},
		{name: "annotation false beats default", annotation: strPtr("false"), defaultMode: true, want: false},
		{name: "unknown annotation falls back to spec", annotation: strPtr("yes"), spec: &yes, want: true},
		{name: "empty annotation falls back to default", annotation: strPtr(""), defaultMode: true, want: true},
		{name: "annotation is case-sensitive", annotation: strPtr("True"), spec: &no, want: false},
	}
	for _, tt := range tests {
		meta := metav1.ObjectMeta{Name: "m"}
		if tt.annotation != nil {
			meta.Annotations = map[string]string{EventDrivenAnnotation: *tt.annotation}
		}
		for kind, obj := range kinds(meta, "", tt.spec) {
			t.Run(tt.name+"/"+kind, func(t *testing.T) {
				if got := obj.IsEventDriven(tt.defaultMode); got != tt.want {
					t.Errorf("IsEventDriven(%v) = %v, want %v", tt.defaultMode, got, tt.want)
				}
			})
		}
	}
}

func TestMetricName(t *testing.T) {
	tests := []struct {
		name     string
		specName string
		want     string
	}{
		{name: "defaults to metadata.name", want: "pods-total"},
		{name: "spec.name wins", specName: "k8s.pods.count", want: "k8s.pods.count"},
	}
	for _, tt := range tests {
		for kind, obj := range kinds(metav1.ObjectMeta{Name: "pods-total"}, tt.specName, nil) {
			t.Run(tt.name+"/"+kind, func(t *testing.T) {
				if got := obj.MetricName(); got != tt.want {
					t.Errorf("MetricName() = %q, want %q", got, tt.want)
				}
			})
		}
	}
}

func TestModeOf(t *testing.T) {
	if got := ModeOf(true); got != ModeEventDriven {
		t.Errorf("ModeOf(true) = %q, want %q", got, ModeEventDriven)
	}
	if got := ModeOf(false); got != ModePolling {
		t.Errorf("ModeOf(false) = %q, want %q", got, ModePolling)
	}
}

func strPtr(s string) *string { return &s }
