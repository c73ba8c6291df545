package controllers_test

import (
	"testing"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestInvalidUTF8LeavesTheSharedSinkWorking has a tenant write a
// ConfigMap through the protobuf API with an annotation that is not
// UTF-8 (the API server checks annotation keys and size, not the bytes of
// values) and count it by that annotation, event-driven, so the value
// arrives as the watch's protobuf carries it. Its metric and another
// tenant's push to the shared default DataSink: both must arrive, the
// tenant's value repaired as /metrics repairs it. Before, the SDK refused
// to marshal the request, and every metric on the default DataSink
// reported ExportFailed for as long as the ConfigMap existed.
func TestInvalidUTF8LeavesTheSharedSinkWorking(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	hostile, neighbour := "utf8-hostile", "utf8-neighbour"
	createNamespace(t, hostile)
	createNamespace(t, neighbour)
	sink := otlpsink.Start(t)
	def := &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: operatorNamespace},
		Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: sink.HTTPURL()}}}
	create(t, def)
	t.Cleanup(func() { _ = env.Client.Delete(ctx, def) })

	cfg := rest.CopyConfig(env.Config)
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "notes", Namespace: hostile,
		Annotations: map[string]string{"note": "caf\xe9"}}}
	if _, err := cs.CoreV1().ConfigMaps(hostile).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	stored, err := cs.CoreV1().ConfigMaps(hostile).Get(ctx, "notes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := stored.Annotations["note"]; utf8.ValidString(v) {
		t.Fatalf("the API server stored the annotation as %q: the case this test needs cannot be made", v)
	}
	create(t, eventDriven(hostile, "notes", v1alpha1.MetricSpec{
		Name:        "utf8_hostile_notes",
		Target:      v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
		Namespace:   hostile,
		Projections: []v1alpha1.Projection{{Name: "note", FieldPath: "metadata.annotations.note"}},
	}))
	// /metrics repairs the value.
	waitSamplesWithin(t, eventTimeout, "utf8_hostile_notes", "{cluster=local,kind=ConfigMap,note=caf\uFFFD,version=v1} 1")

	// The neighbour's metric joins the DataSink the tenant's already
	// pushes to (or fails to).
	create(t, configMap(neighbour, "a", nil), eventDriven(neighbour, "configmaps", v1alpha1.MetricSpec{
		Name:      "utf8_neighbour_configmaps",
		Target:    v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
		Namespace: neighbour,
	}))
	base := map[string]string{"version": "v1", "kind": "ConfigMap", "cluster": "local"}
	waitPoints(t, sink, "utf8_neighbour_configmaps", map[string]int64{pointKey(base): 1})
	base["note"] = "caf\uFFFD"
	waitPoints(t, sink, "utf8_hostile_notes", map[string]int64{pointKey(base): 1})
}
