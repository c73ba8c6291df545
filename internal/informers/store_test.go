package informers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/events"
	"github.com/SAP/metrics-operator/internal/registry"
)

func cm(name, team string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("ConfigMap")
	u.SetNamespace("ns")
	u.SetName(name)
	u.SetUID(types.UID("uid-" + name))
	u.SetLabels(map[string]string{"team": team})
	return u
}

// newTestStore wires a store to one subscription counting ConfigMaps by
// team, the way the Manager does.
func newTestStore(t *testing.T) (*store, *evaluation.Aggregate, *int) {
	t.Helper()
	e, err := evaluation.Compile(evaluation.Spec{Projections: []v1alpha1.Projection{
		{Name: "team", FieldPath: "metadata.labels.team"}}})
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New()
	key := registry.InformerKey{Cluster: "local", GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}}
	changes := 0
	sub := &registry.Subscription{ID: "m", Aggregate: evaluation.NewAggregate(e), OnChange: func() { changes++ }}
	reg.Register(key, sub)
	inf := newInformer(key, schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, true, nil,
		&events.Handler{Registry: reg}, reg)
	return &store{inf}, sub.Aggregate, &changes
}

func series(a *evaluation.Aggregate) map[string]int64 {
	out := map[string]int64{}
	for _, s := range a.Series() {
		out[s.Dimensions[0].Value] = s.Value
	}
	return out
}

func TestStoreAppliesEventsTombstonesAndRelists(t *testing.T) {
	s, agg, changes := newTestStore(t)
	if err := s.Replace([]any{cm("a", "red"), cm("b", "red"), cm("c", "blue")}, "1"); err != nil {
		t.Fatal(err)
	}
	if got := series(agg); got["red"] != 2 || got["blue"] != 1 {
		t.Fatalf("after the initial list: %v", got)
	}
	_ = s.Update(cm("c", "red"))
	if got := series(agg); got["red"] != 3 || len(got) != 1 {
		t.Fatalf("after moving c to red: %v", got)
	}
	// A delete the watch only learned of on relist arrives as a tombstone.
	_ = s.Delete(cache.DeletedFinalStateUnknown{Key: "ns/a", Obj: cm("a", "red")})
	if got := series(agg); got["red"] != 2 {
		t.Fatalf("after a tombstone for a: %v", got)
	}
	// A relist after the watch expired: b is gone and d is new, though no
	// event said so.
	_ = s.Replace([]any{cm("c", "red"), cm("d", "green")}, "9")
	if got := series(agg); got["red"] != 1 || got["green"] != 1 || len(got) != 2 {
		t.Fatalf("after the relist: %v", got)
	}
	if *changes != 3 {
		t.Errorf("OnChange called %d times, want 3 (update, tombstone, relist)", *changes)
	}
}

func TestStoreGivesMetadataObjectsTheTargetKind(t *testing.T) {
	s, _, _ := newTestStore(t)
	p := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"},
		ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns", Labels: map[string]string{"team": "red"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
	m := s.i.toMap(p)
	if m["kind"] != "ConfigMap" || m["apiVersion"] != "v1" {
		t.Fatalf("metadata object reads as %v/%v, want v1/ConfigMap", m["apiVersion"], m["kind"])
	}
	if _, ok := m["metadata"].(map[string]any)["managedFields"]; ok {
		t.Fatal("managedFields kept")
	}
}
