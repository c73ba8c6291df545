package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/controllers"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/export/otlp"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/sharding"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// noPush is an exporter that accepts every push.
type noPush struct{}

func (noPush) Export(context.Context, string, *datasink.Target, []otlp.Metric) error { return nil }

// forgottenStatus is a Metric status writer that writes nothing and
// records the metrics the coordinator removed (StatusForgetter).
type forgottenStatus struct {
	mu   sync.Mutex
	keys map[coordinator.Key]bool
}

func (f *forgottenStatus) WriteStatus(context.Context, coordinator.Key, coordinator.Status) error {
	return nil
}

func (f *forgottenStatus) ForgetStatus(key coordinator.Key) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[key] = true
}

func (f *forgottenStatus) forgot(key coordinator.Key) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keys[key]
}

// TestStandbyReleasesWhatItNeverPublished: with --shard-warm-standby, a
// replica that held a Metric it never published (one in polling mode, and
// an event-driven one the operator refuses, which it reported as an
// error) and becomes its runner-up when a replica joins must still give
// it up: release its hold, so that it acknowledges the new view and the
// joiner may serve the metric, and remove what it reported. Before the
// fix it skipped both for a metric it could keep ready and had not
// published, so it never acknowledged the view, the view never settled on
// any replica, and every metric the joiner took was served by nobody
// (seen in TestShardingWithWarmStandby among other tests' metrics: 14 of
// 45 families unserved for a minute).
//
// The shards are real, their Lease exchange is played by hand; the
// reconciler is the operator's, over the test's API server.
func TestStandbyReleasesWhatItNeverPublished(t *testing.T) {
	testenv.Require(t, env)
	ns := fmt.Sprintf("standby-%d", time.Now().UnixNano()%1e6)
	createNamespace(t, ns)

	// a serves the metrics in the view {a, b}; c joins and takes them, and
	// a, which outranked b on them, becomes their runner-up.
	ab, abc := []string{"a", "b"}, []string{"a", "b", "c"}
	shards := map[string]*sharding.Shard{"a": sharding.NewShard("a"), "b": sharding.NewShard("b"), "c": sharding.NewShard("c")}
	shards["a"].EnableWarmStandby()
	// view gives the shards named who the view and every shard's current
	// acknowledgement, as a listing of their Leases would.
	view := func(members []string, who ...string) {
		acks := map[string]string{}
		for name, s := range shards {
			acks[name] = s.Applied()
		}
		for _, name := range who {
			shards[name].Update(members, slices.Contains(members, name), acks)
		}
	}
	view(ab, "b")
	view(ab, "a")
	if _, _, settled := shards["a"].Status(); !settled {
		t.Fatal("the view {a, b} did not settle on a")
	}

	// A name of each kind that moves from a to c.
	pick := func(prefix string) (string, coordinator.Key) {
		for i := 0; ; i++ {
			name := fmt.Sprintf("%s-%d", prefix, i)
			key := coordinator.Key{Kind: "Metric", Namespace: ns, Name: name}
			if sharding.Owner(key.String(), ab) == "a" && sharding.Owner(key.String(), abc) == "c" {
				if runnerUp := sharding.RunnerUp(key.String(), abc); runnerUp != "a" {
					t.Fatalf("%s: runner-up %s in %v, want a", key, runnerUp, abc)
				}
				return name, key
			}
		}
	}
	polledName, polled := pick("polled")
	refusedName, refused := pick("refused")
	target := v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	interval := metav1.Duration{Duration: 10 * time.Second}
	for _, m := range []*v1alpha1.Metric{
		{ObjectMeta: metav1.ObjectMeta{Name: polledName, Namespace: ns},
			Spec: v1alpha1.MetricSpec{Target: target, Namespace: ns, EventDriven: ptr.To(false), Interval: interval}},
		// Refused: the operator's own families' prefix.
		{ObjectMeta: metav1.ObjectMeta{Name: refusedName, Namespace: ns},
			Spec: v1alpha1.MetricSpec{Name: "metrics_operator_standby_refused", Target: target, Namespace: ns,
				EventDriven: ptr.To(true), Interval: interval}},
	} {
		create(t, m)
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), m) })
	}

	prom := promexport.NewCollector()
	status := &forgottenStatus{keys: map[coordinator.Key]bool{}}
	coord, err := coordinator.New(coordinator.Options{MinExportInterval: time.Hour, StatusInterval: time.Hour,
		Sinks: datasink.NewStore(), Exporter: noPush{}, Prometheus: prom,
		StatusWriters: map[string]coordinator.StatusWriter{"Metric": status}})
	if err != nil {
		t.Fatal(err)
	}
	r := &controllers.EventDrivenReconciler{Client: env.Client, Lister: op.Clusters.Local().Lister, Registry: registry.New(),
		Coordinator: coord, ClusterName: "local", Guard: controllers.Guard{Names: prom}, Shard: shards["a"]}
	reconcile := func(name string) {
		t.Helper()
		if _, err := r.Reconcile(t.Context(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}); err != nil {
			t.Fatalf("reconciling %s: %v", name, err)
		}
	}
	const holder = "metric-eventdriven"

	reconcile(polledName)
	reconcile(refusedName)
	if got := shards["a"].Served(); got != 2 {
		t.Fatalf("a serves %d metrics in the view {a, b}, want both of the test's", got)
	}

	view(abc, "c", "b", "a")
	for _, k := range []coordinator.Key{polled, refused} {
		if !shards["a"].Stale(holder, k.String()) {
			t.Fatalf("%s is not stale on a once c joined: its shard source would not send it", k)
		}
	}
	reconcile(polledName)
	reconcile(refusedName)
	if got := shards["a"].Served(); got != 0 {
		t.Errorf("a still holds %d metrics c took, which it never published: it never acknowledges the view with c", got)
	}
	for _, k := range []coordinator.Key{polled, refused} {
		if !status.forgot(k) {
			t.Errorf("%s: a did not remove what it reported of it when c took it", k)
		}
		if shards["a"].Stale(holder, k.String()) {
			t.Errorf("%s is still stale on a after its reconcile", k)
		}
	}

	view(abc, "c")
	if _, _, settled := shards["c"].Status(); !settled {
		t.Fatal("the view with c did not settle on c: its metrics are served by nobody")
	}
	for _, k := range []coordinator.Key{polled, refused} {
		if !shards["c"].Hold(holder, k.String()) {
			t.Errorf("c may not serve %s, which it owns in the settled view", k)
		}
	}
}
