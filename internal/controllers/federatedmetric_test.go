package controllers_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/controllers"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

func federatedMetric(ns, name string, eventDriven bool, spec v1alpha1.FederatedMetricSpec) *v1alpha1.FederatedMetric {
	spec.EventDriven = ptr.To(eventDriven)
	if spec.Interval.Duration == 0 {
		spec.Interval = metav1.Duration{Duration: 10 * time.Second}
	}
	return &v1alpha1.FederatedMetric{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
}

// waitFederated waits until a FederatedMetric's or
// FederatedManagedMetric's status has the cluster counts active/failed
// (none pending) and a Ready condition of reason, for its generation.
func waitFederated(t *testing.T, obj client.Object, active, failed int32, reason string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		o, conds, ready := federatedStatus(obj)
		if o.ActiveCount != active || o.FailedCount != failed || o.PendingCount != 0 {
			return fmt.Errorf("active/failed/pending %d/%d/%d, want %d/%d/0",
				o.ActiveCount, o.FailedCount, o.PendingCount, active, failed)
		}
		c := meta.FindStatusCondition(conds, v1alpha1.ConditionReady)
		if c == nil || c.Reason != reason || c.ObservedGeneration != obj.GetGeneration() {
			return fmt.Errorf("Ready %+v, want reason %s", c, reason)
		}
		if (reason == v1alpha1.ReasonReady) != (ready == string(metav1.ConditionTrue)) {
			return fmt.Errorf("status.ready %s with reason %s", ready, reason)
		}
		return nil
	})
}

// federatedStatus returns the cluster counts, conditions and
// status.ready of a FederatedMetric or FederatedManagedMetric.
func federatedStatus(obj client.Object) (v1alpha1.FederatedObservation, []metav1.Condition, string) {
	switch o := obj.(type) {
	case *v1alpha1.FederatedMetric:
		return o.Status.Observation, o.Status.Conditions, o.Status.Ready
	case *v1alpha1.FederatedManagedMetric:
		return o.Status.Observation.FederatedObservation, o.Status.Conditions, o.Status.Ready
	}
	panic(fmt.Sprintf("%T is no federated metric", obj))
}

// readyMessage returns the message of a federated metric's Ready
// condition as last read.
func readyMessage(obj client.Object) string {
	_, conds, _ := federatedStatus(obj)
	if c := meta.FindStatusCondition(conds, v1alpha1.ConditionReady); c != nil {
		return c.Message
	}
	return ""
}

// stoppableCluster starts an API server of remote's own, which the test
// stops and starts again while it writes through remote's, and returns
// it with an admin kubeconfig (user) that reads remote through it.
func stoppableCluster(t *testing.T, remote *testenv.Env, user string) (*testenv.APIServer, []byte) {
	t.Helper()
	dir := t.TempDir()
	srv, err := remote.StartAPIServer(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	path, err := srv.WriteKubeconfig(remote, dir, user)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return srv, kc
}

// waitGraceThenWithdrawn follows family, scraped every 250 ms, from the
// moment the operator counted a stopped cluster failed until only the
// other clusters' series are left (others): until the grace period has
// passed since the test began stopping the cluster's API server
// (stopped), family must still be all, the stopped cluster's last series
// included. It returns how long after stopped they left, and how many
// scrapes within the grace period still found them.
func waitGraceThenWithdrawn(t *testing.T, family string, stopped time.Time, all, others []string) (gone time.Duration, held int) {
	t.Helper()
	slices.Sort(all)
	slices.Sort(others)
	deadline := stopped.Add(clusterGrace + time.Minute)
	for {
		got := familySamples(t, family)
		since := time.Since(stopped)
		switch {
		case slices.Equal(got, others):
			if since < clusterGrace {
				t.Errorf("%s: the stopped cluster's series left %v after its API server began stopping, within the grace period of %v",
					family, since, clusterGrace)
			}
			return since, held
		case !slices.Equal(got, all):
			t.Errorf("%s = %v %v after the stop, want %v (within the grace period) or %v", family, got, since, all, others)
		case since < clusterGrace:
			held++
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v %v after the stop, want %v", family, got, since, others)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// familySamples scrapes family's samples as scrape.Strings renders them.
func familySamples(t *testing.T, family string) []string {
	t.Helper()
	fams, err := scrape.Families(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	return scrape.Strings(scrape.Samples(fams, family))
}

// TestFederatedMetricOverClusters reads two clusters discovered by a
// FederatedClusterAccess, each its own control plane, with an event-driven
// and a polling FederatedMetric. Each cluster's ConfigMaps are counted
// under its own cluster label, the same series in both modes; a change on
// one cluster shows within seconds event-driven; a third cluster
// discovered later is read without a restart, and leaves with its series
// when its object goes. Stopping one cluster's API server makes it the
// one failed cluster (Ready=False, ClusterUnreachable) while its series
// stay exported for the grace period and are withdrawn after it; the
// other cluster's values still change live; starting the API server again
// brings its series back by themselves with correct counts.
func TestFederatedMetricOverClusters(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	blue, green := startRemote(t), startRemote(t)
	// Blue is read through an API server of its own that the test stops,
	// while it writes through the other one.
	blueSrv, blueKC := stoppableCluster(t, blue, "metrics-operator-fed")

	ns := "fed-metric"
	createNamespace(t, ns)
	const data = "fm-data"
	for _, c := range []*testenv.Env{blue, green} {
		if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: data}}); err != nil {
			t.Fatal(err)
		}
	}
	counted := func(name, team string) *corev1.ConfigMap {
		return configMap(data, name, map[string]string{"fm": "yes", "team": team})
	}
	for i := range 2 {
		if err := blue.Client.Create(ctx, counted(fmt.Sprintf("b%d", i), "web")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := green.Client.Create(ctx, counted(fmt.Sprintf("g%d", i), "web")); err != nil {
			t.Fatal(err)
		}
	}
	if err := green.Client.Create(ctx, configMap(data, "not-counted", nil)); err != nil {
		t.Fatal(err)
	}
	create(t,
		clusterConfigMap(ns, "blue", "fm", map[string]string{"kubeconfig": string(blueKC)}),
		clusterConfigMap(ns, "green", "fm", map[string]string{"kubeconfig": string(adminKubeconfig(t, green, "fed-green"))}))
	fca := federatedAccess(ns, "planes", v1alpha1.FederatedClusterAccessSpec{KubeConfigPath: "data.kubeconfig", LabelSelector: "fed=fm", Namespace: ns})
	create(t, fca)

	spec := v1alpha1.FederatedMetricSpec{
		Target:                   v1alpha1.GroupVersionKind{Version: "v1", Kind: "configmap"},
		LabelSelector:            "fm=yes",
		Projections:              []v1alpha1.Projection{{Name: "team", FieldPath: "metadata.labels.team", Default: &apiextensionsv1.JSON{Raw: []byte(`"none"`)}}},
		FederateClusterAccessRef: v1alpha1.NamespacedReference{Name: "planes"},
	}
	spec.Name = "fed_events"
	events := federatedMetric(ns, "events", true, spec)
	spec.Name = "fed_polled"
	polled := federatedMetric(ns, "polled", false, spec)
	create(t, events, polled)
	// The metrics go before the access and the control planes, so that no
	// connection outlives the test.
	t.Cleanup(func() {
		for _, o := range []client.Object{events, polled, fca} {
			// t.Context() is cancelled before cleanups run.
			if err := env.Client.Delete(context.Background(), o); err != nil {
				t.Errorf("deleting %s: %v", o.GetName(), err)
			}
		}
		testenv.Eventually(t, 30*time.Second, func() error {
			if n := len(op.Clusters.Open()); n != 0 {
				return fmt.Errorf("%d cluster connections open", n)
			}
			return nil
		})
	})

	sample := func(cluster, team string, n int) string {
		return fmt.Sprintf("{cluster=%s,kind=ConfigMap,team=%s,version=v1} %d", cluster, team, n)
	}
	waitSamplesWithin(t, 60*time.Second, "fed_events", sample("blue", "web", 2), sample("green", "web", 3))
	waitSamplesWithin(t, 60*time.Second, "fed_polled", sample("blue", "web", 2), sample("green", "web", 3))
	waitFederated(t, events, 2, 0, v1alpha1.ReasonReady)
	waitFederated(t, polled, 2, 0, v1alpha1.ReasonReady)
	// Zero counts are written too, for kubectl's FAILED and PENDING columns.
	raw := &unstructured.Unstructured{}
	raw.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("FederatedMetric"))
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(events), raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"activeCount", "failedCount", "pendingCount"} {
		if _, found, _ := unstructured.NestedInt64(raw.Object, "status", "observation", f); !found {
			t.Errorf("status.observation.%s not written", f)
		}
	}
	if events.Status.Mode != v1alpha1.ModeEventDriven || polled.Status.Mode != v1alpha1.ModePolling {
		t.Errorf("modes %q and %q", events.Status.Mode, polled.Status.Mode)
	}
	access := types.NamespacedName{Namespace: ns, Name: "planes"}
	blueWatch := registry.InformerKey{Cluster: controllers.FederatedClusterKey(access, ns, "blue"),
		GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}}
	if !informerActive(blueWatch) {
		t.Errorf("no watch of blue's ConfigMaps: %v", op.Informers.Active())
	}

	// A change on green is on /metrics within seconds, event-driven; a
	// poll shows it within its interval, with the same series.
	if err := green.Client.Create(ctx, counted("g3", "db")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitSamplesWithin(t, 5*time.Second, "fed_events", sample("blue", "web", 2), sample("green", "db", 1), sample("green", "web", 3))
	t.Logf("green change on /metrics (event-driven) after %v", time.Since(start).Round(time.Millisecond))
	waitSamples(t, "fed_polled", sample("blue", "web", 2), sample("green", "db", 1), sample("green", "web", 3))

	// A third cluster (the operator's own, as "red") appears and goes
	// without a restart.
	create(t, configMap(ns, "r0", map[string]string{"fm": "yes", "team": "ops"}))
	create(t, clusterConfigMap(ns, "red", "fm", map[string]string{"kubeconfig": string(adminKubeconfig(t, env, "fed-red"))}))
	start = time.Now()
	waitSamplesWithin(t, 10*time.Second, "fed_events",
		sample("blue", "web", 2), sample("green", "db", 1), sample("green", "web", 3), sample("red", "ops", 1))
	t.Logf("third cluster on /metrics (event-driven) after %v", time.Since(start).Round(time.Millisecond))
	waitSamples(t, "fed_polled",
		sample("blue", "web", 2), sample("green", "db", 1), sample("green", "web", 3), sample("red", "ops", 1))
	waitFederated(t, events, 3, 0, v1alpha1.ReasonReady)
	if err := env.Client.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "red"}}); err != nil {
		t.Fatal(err)
	}
	waitSamplesWithin(t, 10*time.Second, "fed_events", sample("blue", "web", 2), sample("green", "db", 1), sample("green", "web", 3))
	waitSamples(t, "fed_polled", sample("blue", "web", 2), sample("green", "db", 1), sample("green", "web", 3))
	waitFederated(t, events, 2, 0, v1alpha1.ReasonReady)

	// Blue's API server stops: blue is the one failed cluster, exported
	// for the grace period, then withdrawn; green goes on live.
	// The grace period starts when the operator notices, after this.
	stopped := time.Now()
	if err := blueSrv.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFederated(t, events, 1, 1, v1alpha1.ReasonClusterUnreachable)
	if up := selfMetric(t, "metrics_operator_cluster_up", "cluster", "blue"); up != 0 || selfMetric(t, "metrics_operator_cluster_up", "cluster", "green") != 1 {
		t.Errorf("cluster_up{blue} %v while its API server is down, or green not up", up)
	}
	t.Logf("one cluster down: %s", readyMessage(events))
	gone, held := waitGraceThenWithdrawn(t, "fed_events", stopped,
		[]string{sample("blue", "web", 2), sample("green", "db", 1), sample("green", "web", 3)},
		[]string{sample("green", "db", 1), sample("green", "web", 3)})
	t.Logf("blue withdrawn %v after its API server began stopping (grace %v); %d scrapes within the grace period still had it",
		gone.Round(time.Millisecond), clusterGrace, held)
	if err := green.Client.Create(ctx, counted("g4", "db")); err != nil {
		t.Fatal(err)
	}
	waitSamplesWithin(t, 5*time.Second, "fed_events", sample("green", "db", 2), sample("green", "web", 3))
	waitSamples(t, "fed_polled", sample("green", "db", 2), sample("green", "web", 3))
	waitFederated(t, polled, 1, 1, v1alpha1.ReasonClusterUnreachable)

	// Written through blue's other API server while this one is down;
	// blue comes back by itself with its current count.
	if err := blue.Client.Create(ctx, counted("b2", "web")); err != nil {
		t.Fatal(err)
	}
	if err := blueSrv.Start(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	waitSamplesWithin(t, 40*time.Second, "fed_events", sample("blue", "web", 3), sample("green", "db", 2), sample("green", "web", 3))
	t.Logf("blue back on /metrics (event-driven) %v after its API server answered", time.Since(start).Round(time.Millisecond))
	waitSamplesWithin(t, 40*time.Second, "fed_polled", sample("blue", "web", 3), sample("green", "db", 2), sample("green", "web", 3))
	waitFederated(t, events, 2, 0, v1alpha1.ReasonReady)
	waitFederated(t, polled, 2, 0, v1alpha1.ReasonReady)
	if up := selfMetric(t, "metrics_operator_cluster_up", "cluster", "blue"); up != 1 {
		t.Errorf("cluster_up{blue} %v after it recovered, want 1", up)
	}
}

// TestFederatedMetricRefusals: a FederatedMetric is checked as a Metric
// is (reserved names, Secret payloads), its series over all clusters
// count against spec.maxSeries, a missing access is ClusterUnreachable,
// and a kind its clusters do not serve fails each cluster for itself.
// Its clusters are the operator's own, discovered twice.
func TestFederatedMetricRefusals(t *testing.T) {
	testenv.Require(t, env)
	ns := "fed-refusals"
	createNamespace(t, ns)
	kc := string(adminKubeconfig(t, env, "fed-refusals"))
	fca := federatedAccess(ns, "self", v1alpha1.FederatedClusterAccessSpec{KubeConfigPath: "data.kubeconfig", LabelSelector: "fed=self", Namespace: ns})
	create(t,
		clusterConfigMap(ns, "one", "self", map[string]string{"kubeconfig": kc}),
		clusterConfigMap(ns, "two", "self", map[string]string{"kubeconfig": kc}), fca)
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), fca) })
	ref := v1alpha1.NamespacedReference{Name: "self"}
	configMaps := v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	cases := []struct {
		name           string
		spec           v1alpha1.FederatedMetricSpec
		reason         string
		active, failed int32
	}{
		{"reserved", v1alpha1.FederatedMetricSpec{Name: "go_federated", Target: configMaps, FederateClusterAccessRef: ref},
			v1alpha1.ReasonReservedName, 0, 0},
		{"secret-data", v1alpha1.FederatedMetricSpec{Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "Secret"}, FederateClusterAccessRef: ref,
			Projections: []v1alpha1.Projection{{Name: "password", FieldPath: "data.password"}}}, v1alpha1.ReasonSecretDataForbidden, 0, 0},
		{"no-access", v1alpha1.FederatedMetricSpec{Target: configMaps, FederateClusterAccessRef: v1alpha1.NamespacedReference{Name: "missing"}},
			v1alpha1.ReasonClusterUnreachable, 0, 0},
		{"too-many", v1alpha1.FederatedMetricSpec{Target: configMaps, FieldSelector: "metadata.name=one", MaxSeries: ptr.To[int32](1),
			FederateClusterAccessRef: ref}, v1alpha1.ReasonSeriesLimitExceeded, 2, 0},
		{"not-served", v1alpha1.FederatedMetricSpec{Target: v1alpha1.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Nothing"},
			FederateClusterAccessRef: ref}, v1alpha1.ReasonTargetNotFound, 0, 2},
	}
	for _, c := range cases {
		for _, eventDriven := range []bool{true, false} {
			name := c.name + map[bool]string{true: "-events", false: "-polled"}[eventDriven]
			spec := c.spec
			if spec.Name != "" {
				spec.Name += map[bool]string{true: "_events", false: "_polled"}[eventDriven]
			}
			fm := federatedMetric(ns, name, eventDriven, spec)
			create(t, fm)
			t.Cleanup(func() { _ = env.Client.Delete(context.Background(), fm) })
			waitReadyWithin(t, 40*time.Second, fm, func() []metav1.Condition { return fm.Status.Conditions }, metav1.ConditionFalse, c.reason)
			if c.active+c.failed > 0 {
				waitFederated(t, fm, c.active, c.failed, c.reason)
			}
			t.Logf("%s: %s", name, meta.FindStatusCondition(fm.Status.Conditions, v1alpha1.ConditionReady).Message)
			if got := familySamples(t, strings.ReplaceAll(fm.MetricName(), "-", "_")); len(got) > 0 && c.reason != v1alpha1.ReasonTargetNotFound {
				t.Errorf("%s exports %v", name, got)
			}
		}
	}
}
