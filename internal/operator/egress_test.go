package operator_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestDataSinkOutsideAllowedEndpointsIsNeverContacted runs the operator
// with --datasink-allowed-endpoints=localhost,10.0.0.0/8. DataSinks at
// 127.0.0.1 (OTLP/HTTP and OTLP/gRPC) are refused with EndpointNotAllowed,
// and a TCP listener at that address sees no connection although Metrics
// push to them; a DataSink at localhost (admitted by name) receives its
// Metric's pushes in the meantime.
func TestDataSinkOutsideAllowedEndpointsIsNeverContacted(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "egress"
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "one", Namespace: ns}})

	forbidden := listenCounting(t)
	sink := otlpsink.Start(t)
	_, sinkPort, _ := net.SplitHostPort(sink.HTTPAddr())
	sinks := map[string]string{
		"refused-http": "http://" + forbidden.addr() + "/v1/metrics",
		"refused-grpc": "grpc://" + forbidden.addr(),
		"admitted":     "http://localhost:" + sinkPort + "/v1/metrics",
	}
	for name, endpoint := range sinks {
		mustCreate(t, &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: endpoint}}})
		m := &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "to-" + name, Namespace: ns},
			Spec: v1alpha1.MetricSpec{Name: "egress_" + strings.ReplaceAll(name, "-", "_"),
				Target:      v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
				Namespace:   ns,
				EventDriven: ptr.To(true),
				Interval:    metav1.Duration{Duration: 10 * time.Second},
				DataSinkRef: &v1alpha1.DataSinkReference{Name: name}}}
		mustCreate(t, m)
		// Other tests' operators (without the flag) must not push to them.
		t.Cleanup(func() {
			_ = env.Client.Delete(context.Background(), m)
			_ = env.Client.Delete(context.Background(), &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}})
		})
	}

	run(t, env.Config, operator.Options{MetricsAddr: "0", ProbeAddr: "0", Namespace: ns,
		MinExportInterval: 200 * time.Millisecond, DataSinkAllowedEndpoints: []string{"localhost", "10.0.0.0/8"}})

	for _, name := range []string{"refused-http", "refused-grpc"} {
		testenv.Eventually(t, 30*time.Second, func() error {
			ds := &v1alpha1.DataSink{}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ds); err != nil {
				return err
			}
			c := meta.FindStatusCondition(ds.Status.Conditions, v1alpha1.ConditionReady)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonEndpointNotAllowed {
				return fmt.Errorf("DataSink %s: Ready %+v, want False/%s", name, c, v1alpha1.ReasonEndpointNotAllowed)
			}
			t.Logf("DataSink %s: %s", name, c.Message)
			return nil
		})
		// The Metric says why it is not pushed.
		waitMetricReason(t, ns, "to-"+name, v1alpha1.ReasonEndpointNotAllowed, 30*time.Second)
	}
	waitMetricReason(t, ns, "to-admitted", v1alpha1.ReasonReady, 30*time.Second)

	// Every change is pushed to all three DataSinks at once (their Metrics
	// count the same ConfigMaps): two changes reach the admitted sink, so
	// any push to the refused ones would have been attempted by then.
	if !sink.WaitFor(30*time.Second, func() bool { return sink.Count() >= 1 }) {
		t.Fatal("the admitted DataSink received no push")
	}
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "two", Namespace: ns}})
	if !sink.WaitFor(30*time.Second, func() bool { return sink.Count() >= 2 }) {
		t.Fatalf("the admitted DataSink received %d pushes, want 2", sink.Count())
	}
	if n := forbidden.accepted.Load(); n != 0 {
		t.Fatalf("the refused endpoint saw %d connections", n)
	}
	t.Logf("admitted sink: %d pushes; refused endpoint: 0 connections", sink.Count())
}

// countingListener is a TCP listener that counts and closes every
// connection it accepts.
type countingListener struct {
	l        net.Listener
	accepted atomic.Int64
}

func (c *countingListener) addr() string { return c.l.Addr().String() }

// kubeconfig returns a kubeconfig whose cluster is the listener, with the
// test control plane's CA and a token nobody checks.
func (c *countingListener) kubeconfig() []byte {
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://%s", certificate-authority-data: %s}}]
users: [{name: u, user: {token: not-used}}]
`, c.addr(), base64.StdEncoding.EncodeToString(env.Config.CAData))
}

// adminKubeconfig returns a kubeconfig of the test control plane.
func adminKubeconfig(t *testing.T, name string) []byte {
	t.Helper()
	path, err := env.WriteAdminKubeconfig(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func listenCounting(t *testing.T) *countingListener {
	t.Helper()
	return listenCountingOn(t, "127.0.0.1:0")
}

// listenCountingOn is listenCounting at addr.
func listenCountingOn(t *testing.T, addr string) *countingListener {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &countingListener{l: l}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			c.accepted.Add(1)
			_ = conn.Close()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	return c
}
