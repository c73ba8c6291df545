package informers_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/events"
	"github.com/SAP/metrics-operator/internal/informers"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	testenv.Main(m, &env)
}

// TestEnsureBeforeStartQueues ensures a watch before the Manager runs, as
// a metric reconciled before the manager starts its Runnables does: that
// is no error, nothing is watched yet, and Start starts the watch, whose
// list fills the metric. A watch released before Start never starts.
func TestEnsureBeforeStartQueues(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	const ns = "ensure-before-start"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i), Namespace: ns}}
		if err := env.Client.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	md, err := metadata.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New()
	m := informers.New(informers.Options{Registry: reg, Handler: &events.Handler{Registry: reg},
		Clients: func(string) (*informers.Clients, error) { return &informers.Clients{Dynamic: dyn, Metadata: md}, nil }})

	e, err := evaluation.Compile(evaluation.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	gvk := schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	configMaps := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	key := registry.InformerKey{Cluster: "local", GVR: configMaps, Namespace: ns}
	synced := make(chan struct{})
	sub := &registry.Subscription{ID: "kept", Aggregate: evaluation.NewAggregate(e), MetadataOnly: true,
		OnSynced: func() { close(synced) }, OnError: func(err error) { t.Errorf("watch failed: %v", err) }}
	reg.Register(key, sub)
	if err := m.Ensure(key, gvk, sub); err != nil {
		t.Fatalf("Ensure before Start: %v", err)
	}
	released := registry.InformerKey{Cluster: "local", GVR: configMaps, Namespace: "released"}
	gone := &registry.Subscription{ID: "released", Aggregate: evaluation.NewAggregate(e), MetadataOnly: true}
	reg.Register(released, gone)
	if err := m.Ensure(released, gvk, gone); err != nil {
		t.Fatalf("Ensure before Start: %v", err)
	}
	reg.Unregister(gone.ID)
	m.Release(released)
	if active := m.Active(); len(active) != 0 {
		t.Fatalf("watches %v run before Start", active)
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Start(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start returned %v", err)
		}
	}()
	select {
	case <-synced:
	case <-time.After(30 * time.Second):
		t.Fatal("the queued watch did not fill its metric within 30s of Start")
	}
	if n := sub.Aggregate.Len(); n != 3 {
		t.Errorf("the metric holds %d objects, want 3", n)
	}
	if active := m.Active(); len(active) != 1 || active[0] != key {
		t.Errorf("active watches %v, want only %v", active, key)
	}
}
