package informers

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// converted is what the generic converter makes of m, less managedFields.
func converted(t testing.TB, m *metav1.ObjectMeta) map[string]any {
	t.Helper()
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(m)
	if err != nil {
		t.Fatal(err)
	}
	delete(u, "managedFields")
	return u
}

// randomMeta fills each field of ObjectMeta, or leaves it empty, at random:
// empty and nil apart, zero and set pointers, empty and filled maps.
func randomMeta(r *rand.Rand) metav1.ObjectMeta {
	str := func(s string) string {
		if r.IntN(3) == 0 {
			return ""
		}
		return fmt.Sprintf("%s-%d", s, r.IntN(1000))
	}
	strs := func() map[string]string {
		switch r.IntN(3) {
		case 0:
			return nil
		case 1:
			return map[string]string{}
		}
		m := map[string]string{}
		for i := range r.IntN(4) + 1 {
			m[fmt.Sprint("k", i)] = str("v")
		}
		return m
	}
	when := func() metav1.Time {
		if r.IntN(3) == 0 {
			return metav1.Time{}
		}
		return metav1.NewTime(time.Unix(r.Int64N(2e9), r.Int64N(1e9)))
	}
	boolPtr := func() *bool {
		if r.IntN(3) == 0 {
			return nil
		}
		return ptr.To(r.IntN(2) == 0)
	}
	m := metav1.ObjectMeta{Name: str("name"), GenerateName: str("gen"), Namespace: str("ns"),
		UID: types.UID(str("uid")), ResourceVersion: str("rv"), CreationTimestamp: when(),
		Labels: strs(), Annotations: strs()}
	if r.IntN(2) == 0 {
		m.Generation = r.Int64N(10)
	}
	if r.IntN(2) == 0 {
		m.DeletionTimestamp = ptr.To(when())
	}
	if r.IntN(2) == 0 {
		m.DeletionGracePeriodSeconds = ptr.To(r.Int64N(60))
	}
	for range r.IntN(3) {
		m.OwnerReferences = append(m.OwnerReferences, metav1.OwnerReference{APIVersion: str("v1"), Kind: str("Kind"),
			Name: str("owner"), UID: types.UID(str("uid")), Controller: boolPtr(), BlockOwnerDeletion: boolPtr()})
	}
	if r.IntN(3) == 0 {
		m.OwnerReferences = []metav1.OwnerReference{}
	}
	switch r.IntN(3) {
	case 0:
		m.Finalizers = []string{}
	case 1:
		m.Finalizers = []string{str("f"), str("g")}
	}
	if r.IntN(2) == 0 {
		m.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "m", Operation: metav1.ManagedFieldsOperationApply, Time: ptr.To(when())}}
	}
	return m
}

// TestMetadataMapMatchesConverter holds metadataMap equal to the generic
// converter, which the evaluation engine's metadata paths were written
// against, for every field of ObjectMeta set and unset.
func TestMetadataMapMatchesConverter(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	metas := []metav1.ObjectMeta{{}, {CreationTimestamp: metav1.NewTime(time.Unix(1, 0))}, {DeletionTimestamp: &metav1.Time{}}}
	for range 2000 {
		metas = append(metas, randomMeta(r))
	}
	for i := range metas {
		want, got := converted(t, &metas[i]), metadataMap(&metas[i])
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("metadataMap(%+v)\n got %#v\nwant %#v", metas[i], got, want)
		}
	}
}

// TestMetadataMapKnowsEveryField fails when ObjectMeta has a field that
// metadataMap leaves out (a new Kubernetes release added one): add it
// there and to randomMeta. selfLink is known and left out: no API server
// sets it any more.
func TestMetadataMapKnowsEveryField(t *testing.T) {
	known := []string{"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
		"creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
		"ownerReferences", "finalizers", "managedFields"}
	ty := reflect.TypeFor[metav1.ObjectMeta]()
	for i := range ty.NumField() {
		name, _, _ := strings.Cut(ty.Field(i).Tag.Get("json"), ",")
		if !slices.Contains(known, name) {
			t.Errorf("ObjectMeta field %s (%q) is not converted by metadataMap", ty.Field(i).Name, name)
		}
	}
	ref := reflect.TypeFor[metav1.OwnerReference]()
	if ref.NumField() != 6 {
		t.Errorf("OwnerReference has %d fields, metadataMap converts 6", ref.NumField())
	}
}

func benchmarkMeta() *metav1.ObjectMeta {
	now := metav1.NewTime(time.Unix(1700000000, 0))
	return &metav1.ObjectMeta{Name: "cm-00001", Namespace: "bench-objects", UID: "0b6c9b0e-8a6e-4c6e-9d6c-1c2f0f5d2a11",
		ResourceVersion: "123456", CreationTimestamp: now, Labels: map[string]string{"team": "t1", "tier": "web"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "bench", Operation: "Update", APIVersion: "v1", Time: &now}}}
}

// BenchmarkMetadataMap and BenchmarkMetadataConverter compare the two
// ways to the same map, for a ConfigMap's metadata as the benchmark's.
func BenchmarkMetadataMap(b *testing.B) {
	m := benchmarkMeta()
	b.ReportAllocs()
	for b.Loop() {
		_ = metadataMap(m)
	}
}

func BenchmarkMetadataConverter(b *testing.B) {
	m := benchmarkMeta()
	b.ReportAllocs()
	for b.Loop() {
		_ = converted(b, m)
	}
}
