package operator_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestStopLeavesNoGoroutines runs the whole operator, with an
// event-driven and a polling metric pushing over OTLP, stops it through
// its context, and checks that every goroutine it started is gone.
func TestStopLeavesNoGoroutines(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	sink := otlpsink.Start(t)
	ns := "lifecycle"
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "counted", Namespace: ns}})
	mustCreate(t, &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: sink.HTTPURL()}}})
	target := v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	mustCreate(t, &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "events", Namespace: ns},
		Spec: v1alpha1.MetricSpec{Target: target, Namespace: ns, EventDriven: ptr.To(true),
			Interval: metav1.Duration{Duration: time.Hour}}})
	mustCreate(t, &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "polls", Namespace: ns},
		Spec: v1alpha1.MetricSpec{Target: target, Namespace: ns, Interval: metav1.Duration{Duration: 10 * time.Second}}})

	// Everything running before the operator starts (the test's client,
	// the receiver) is not the operator's.
	ignore := goleak.IgnoreCurrent()

	opts := operator.Options{MetricsAddr: "0", ProbeAddr: "0", Namespace: ns, AllowSeveralInProcess: true, MinExportInterval: 100 * time.Millisecond}
	if err := opts.Complete(); err != nil {
		t.Fatal(err)
	}
	op, err := operator.New(env.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- op.Manager.Start(runCtx) }()
	testenv.Eventually(t, 30*time.Second, func() error {
		if _, ok := sink.Latest("polls"); !ok {
			return fmt.Errorf("no push of the polling metric yet")
		}
		if _, ok := sink.Latest("events"); !ok {
			return fmt.Errorf("no push of the event-driven metric yet")
		}
		return nil
	})
	if !slices.ContainsFunc(op.Informers.Active(), func(k registry.InformerKey) bool { return k.Namespace == ns }) {
		t.Fatalf("active informers: %v, want one for namespace %s", op.Informers.Active(), ns)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("manager stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("manager did not stop within 30s of its context ending")
	}
	goleak.VerifyNone(t, ignore,
		// client-go keeps HTTP/2 connections in a process-wide transport
		// cache shared with the test's own client; they are not the
		// operator's.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
		goleak.IgnoreAnyFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
		// controller-runtime wraps metadata-only watches (our Secret watch)
		// in apimachinery's watch.Filter, whose goroutine blocks forever on
		// an event that arrives after the informer stopped reading. It is
		// theirs, and rare; nothing of ours is excused.
		goleak.IgnoreTopFunction("k8s.io/apimachinery/pkg/watch.(*filteredWatch).loop"),
	)
}

func mustCreate(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(t.Context(), obj); err != nil {
		t.Fatal(err)
	}
}
