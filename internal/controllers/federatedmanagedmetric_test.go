package controllers_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/controllers"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

func federatedManagedMetric(ns, name, metricName, access string, eventDriven bool) *v1alpha1.FederatedManagedMetric {
	f := &v1alpha1.FederatedManagedMetric{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.FederatedManagedMetricSpec{Name: metricName, EventDriven: ptr.To(eventDriven),
			FederateClusterAccessRef: v1alpha1.NamespacedReference{Name: access}}}
	f.Spec.Interval = metav1.Duration{Duration: time.Hour} // only events can pass
	if !eventDriven {
		f.Spec.Interval = metav1.Duration{Duration: 10 * time.Second}
	}
	return f
}

// waitResources waits until the metric's status counts resources
// managed resources over the clusters it reads.
func waitResources(t *testing.T, f *v1alpha1.FederatedManagedMetric, resources int64) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(f), f); err != nil {
			return err
		}
		if got := f.Status.Observation.Resources; got != resources {
			return fmt.Errorf("status.observation.resources %d, want %d", got, resources)
		}
		return nil
	})
}

// TestFederatedManagedMetric runs the operator's control plane and two
// remote ones, blue and green, each serving a managed kind, discovered by
// a FederatedClusterAccess from ConfigMaps. FederatedManagedMetrics,
// event-driven and polling, give the same per-cluster series and count
// the clusters in status; a Ready flip on blue moves one resource between
// its series from the watch; a CRD installed later on green is picked up;
// green leaving the access takes its series and watches along and
// joining again brings them back, without a restart; a cluster that
// cannot be read is counted failed and named while the others go on;
// transitions are events.
func TestFederatedManagedMetric(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	blue, green := startRemote(t), startRemote(t)
	ns := "fmm"
	createNamespace(t, ns)
	buckets := fakeKind{group: "s3.fmm.test", kind: "Bucket", plural: "buckets", categories: crossplane}
	plain := fakeKind{group: "plain.fmm.test", kind: "Gadget", plural: "gadgets", categories: []string{"crossplane"}}
	for _, c := range []client.Client{blue.Client, green.Client} {
		buckets.installIn(t, c)
		plain.installIn(t, c)
	}
	flip := buckets.object("v1beta1", "b3", "False", "True", nil, nil)
	createIn(t, blue.Client,
		buckets.object("v1beta1", "b1", "True", "True", nil, nil),
		buckets.object("v1beta2", "b2", "True", "True", nil, nil),
		flip,
		plain.object("v1beta1", "g1", "True", "True", nil, nil))
	createIn(t, green.Client, buckets.object("v1beta1", "b1", "True", "True", nil, nil))

	blueKC, greenKC := string(adminKubeconfig(t, blue, "fmm-blue")), string(adminKubeconfig(t, green, "fmm-green"))
	create(t,
		clusterConfigMap(ns, "blue", "fmm", map[string]string{"kubeconfig": blueKC}),
		clusterConfigMap(ns, "green", "fmm", map[string]string{"kubeconfig": greenKC}))
	fca := federatedAccess(ns, "planes", v1alpha1.FederatedClusterAccessSpec{KubeConfigPath: "data.kubeconfig", LabelSelector: "fed=fmm", Namespace: ns})
	create(t, fca)
	waitClusters(t, 30*time.Second, fca, "blue=Ready,green=Ready")

	events := federatedManagedMetric(ns, "events", "fmm_events", "planes", true)
	polled := federatedManagedMetric(ns, "polled", "fmm_polled", "planes", false)
	missing := federatedManagedMetric(ns, "missing", "fmm_missing", "no-such-access", true)
	create(t, events, polled, missing)

	series := func(cluster, kind, ready, synced string, n int) string {
		group := map[string]string{"Bucket": buckets.group, "Queue": "sqs.fmm.test"}[kind]
		return fmt.Sprintf("{cluster=%s,group=%s,kind=%s,ready=%s,synced=%s,version=v1beta2} %d", cluster, group, kind, ready, synced, n)
	}
	want := []string{series("blue", "Bucket", "False", "True", 1), series("blue", "Bucket", "True", "True", 2),
		series("green", "Bucket", "True", "True", 1)}
	waitSamplesWithin(t, 30*time.Second, "fmm_events", want...)
	waitSamplesWithin(t, 30*time.Second, "fmm_polled", want...)
	for _, f := range []*v1alpha1.FederatedManagedMetric{events, polled} {
		waitFederated(t, f, 2, 0, v1alpha1.ReasonReady)
		waitResources(t, f, 4)
	}
	if events.Status.Mode != v1alpha1.ModeEventDriven || polled.Status.Mode != v1alpha1.ModePolling || events.Status.LastReconcileTime == nil {
		t.Errorf("modes %q, %q, lastReconcileTime %v", events.Status.Mode, polled.Status.Mode, events.Status.LastReconcileTime)
	}
	waitReadyWithin(t, 30*time.Second, missing, func() []metav1.Condition { return missing.Status.Conditions },
		metav1.ConditionFalse, v1alpha1.ReasonClusterUnreachable)
	access := types.NamespacedName{Namespace: ns, Name: "planes"}
	blueKey, greenKey := controllers.FederatedClusterKey(access, ns, "blue"), controllers.FederatedClusterKey(access, ns, "green")
	if got := op.ManagedKinds.Active(); !slices.Contains(got, blueKey) || !slices.Contains(got, greenKey) {
		t.Errorf("CRD watches %v, want one per cluster", got)
	}

	// A Ready flip on blue moves one resource between its series.
	start := time.Now()
	if err := blue.Client.Get(ctx, client.ObjectKeyFromObject(flip), flip); err != nil {
		t.Fatal(err)
	}
	setConditions(flip, "True", "True")
	if err := blue.Client.Update(ctx, flip); err != nil {
		t.Fatal(err)
	}
	want = []string{series("blue", "Bucket", "True", "True", 3), series("green", "Bucket", "True", "True", 1)}
	waitSamplesWithin(t, eventTimeout, "fmm_events", want...)
	t.Logf("Ready flip on blue on /metrics after %s", time.Since(start).Round(time.Millisecond))
	waitSamplesWithin(t, 30*time.Second, "fmm_polled", want...)

	// A managed CRD installed on green only.
	queues := fakeKind{group: "sqs.fmm.test", kind: "Queue", plural: "queues", categories: crossplane, namespaced: true}
	queues.installIn(t, green.Client)
	createIn(t, green.Client, queues.object("v1beta1", "q1", "False", "False", nil, nil))
	want = append(want, series("green", "Queue", "False", "False", 1))
	waitSamplesWithin(t, 30*time.Second, "fmm_events", want...)
	waitSamplesWithin(t, 30*time.Second, "fmm_polled", want...)

	// green leaves the access: its series, CRD watch and watches go.
	if err := env.Client.Delete(ctx, configMap(ns, "green", nil)); err != nil {
		t.Fatal(err)
	}
	blueOnly := []string{series("blue", "Bucket", "True", "True", 3)}
	waitSamplesWithin(t, 30*time.Second, "fmm_events", blueOnly...)
	waitSamplesWithin(t, 30*time.Second, "fmm_polled", blueOnly...)
	testenv.Eventually(t, 30*time.Second, func() error {
		if slices.Contains(op.ManagedKinds.Active(), greenKey) {
			return fmt.Errorf("green's CRD watch still runs")
		}
		for _, ik := range op.Informers.Active() {
			if ik.Cluster == greenKey {
				return fmt.Errorf("watch %v still runs", ik)
			}
		}
		return nil
	})
	waitFederated(t, events, 1, 0, v1alpha1.ReasonReady)
	waitResources(t, events, 3)

	// It joins again, and a garbled cluster joins beside it: green is read
	// again, the garbled one is counted failed and named, blue goes on.
	start = time.Now()
	create(t,
		clusterConfigMap(ns, "green", "fmm", map[string]string{"kubeconfig": greenKC}),
		clusterConfigMap(ns, "garbled", "fmm", map[string]string{"kubeconfig": "apiVersion: v1\nkind: Config\nclusters: [oops"}))
	waitSamplesWithin(t, 30*time.Second, "fmm_events", want...)
	t.Logf("rejoined cluster on /metrics after %s", time.Since(start).Round(time.Millisecond))
	waitSamplesWithin(t, 30*time.Second, "fmm_polled", want...)
	for _, f := range []*v1alpha1.FederatedManagedMetric{events, polled} {
		waitFederated(t, f, 2, 1, v1alpha1.ReasonInvalidKubeConfig)
		waitResources(t, f, 5)
		if msg := readyMessage(f); !strings.Contains(msg, "1 of 3 clusters cannot be read: garbled (InvalidKubeConfig)") {
			t.Errorf("Ready message does not name the failed cluster: %q", msg)
		}
	}

	// Every transition is an event on its metric.
	waitEvents(t, ns, "FederatedManagedMetric",
		map[string]string{"events": "Warning/InvalidKubeConfig", "polled": "Warning/InvalidKubeConfig", "missing": "Warning/ClusterUnreachable"})

	// Deleting the metrics releases every cluster's watches.
	for _, f := range []*v1alpha1.FederatedManagedMetric{events, polled, missing} {
		if err := env.Client.Delete(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	waitFamilyGone(t, eventTimeout, "fmm_events")
	waitFamilyGone(t, eventTimeout, "fmm_polled")
	testenv.Eventually(t, 30*time.Second, func() error {
		if got := op.ManagedKinds.Active(); len(got) != 0 {
			return fmt.Errorf("CRD watches %v after the metrics went", got)
		}
		for _, ik := range op.Informers.Active() {
			if ik.Cluster == blueKey || ik.Cluster == greenKey {
				return fmt.Errorf("watch %v still runs", ik)
			}
		}
		return nil
	})
	if err := env.Client.Delete(ctx, fca); err != nil {
		t.Fatal(err)
	}
}

// TestFederatedManagedMetricClusterOutage stops the API server of one of
// two clusters, as TestFederatedMetricOverClusters does for a
// FederatedMetric: in both modes the stopped cluster is counted failed
// (Ready False, ClusterUnreachable, cluster_up 0) and keeps its last
// series for the grace period, then they are withdrawn, while the other
// cluster's series stay exported and change live; started again, it is
// read again by itself with the resources created meanwhile.
func TestFederatedManagedMetricClusterOutage(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	blue, green := startRemote(t), startRemote(t)
	srv, blueKC := stoppableCluster(t, blue, "fmm-outage")
	ns := "fmm-outage"
	createNamespace(t, ns)
	buckets := fakeKind{group: "s3.fmmo.test", kind: "Bucket", plural: "buckets", categories: crossplane}
	for _, c := range []client.Client{blue.Client, green.Client} {
		buckets.installIn(t, c)
		createIn(t, c, buckets.object("v1beta1", "b1", "True", "True", nil, nil))
	}
	create(t,
		clusterConfigMap(ns, "blue", "fmmo", map[string]string{"kubeconfig": string(blueKC)}),
		clusterConfigMap(ns, "green", "fmmo", map[string]string{"kubeconfig": string(adminKubeconfig(t, green, "fmmo-green"))}),
		federatedAccess(ns, "planes", v1alpha1.FederatedClusterAccessSpec{KubeConfigPath: "data.kubeconfig", LabelSelector: "fed=fmmo", Namespace: ns}))
	events := federatedManagedMetric(ns, "events", "fmmo_events", "planes", true)
	polled := federatedManagedMetric(ns, "polled", "fmmo_polled", "planes", false)
	create(t, events, polled)
	sample := func(cluster string, n int) string {
		return fmt.Sprintf("{cluster=%s,group=s3.fmmo.test,kind=Bucket,ready=True,synced=True,version=v1beta2} %d", cluster, n)
	}
	waitSamplesWithin(t, 30*time.Second, "fmmo_events", sample("blue", 1), sample("green", 1))
	waitSamplesWithin(t, 30*time.Second, "fmmo_polled", sample("blue", 1), sample("green", 1))

	// The grace period starts when the operator notices, after this.
	stopped := time.Now()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFederated(t, events, 1, 1, v1alpha1.ReasonClusterUnreachable)
	t.Logf("blue counted failed %v after its API server began stopping: %s", time.Since(stopped).Round(time.Millisecond), readyMessage(events))
	if up := selfMetric(t, "metrics_operator_cluster_up", "cluster", "blue"); up != 0 {
		t.Errorf("cluster_up{blue} %v while its API server is down, want 0", up)
	}
	all, greenOnly := []string{sample("blue", 1), sample("green", 1)}, []string{sample("green", 1)}
	gone, held := waitGraceThenWithdrawn(t, "fmmo_events", stopped, all, greenOnly)
	t.Logf("event-driven: blue withdrawn %v after its API server began stopping (grace %v); %d scrapes within the grace period still had it",
		gone.Round(time.Millisecond), clusterGrace, held)
	// The poll runs every 10 s: it notices within one interval.
	waitFederated(t, polled, 1, 1, v1alpha1.ReasonClusterUnreachable)
	waitSamplesWithin(t, 30*time.Second, "fmmo_polled", greenOnly...)
	t.Logf("polling: blue withdrawn %v after its API server began stopping", time.Since(stopped).Round(time.Millisecond))
	waitResources(t, events, 1)

	// green stays live; blue changes meanwhile through its other API server.
	start := time.Now()
	createIn(t, green.Client, buckets.object("v1beta1", "b2", "True", "True", nil, nil))
	waitSamplesWithin(t, eventTimeout, "fmmo_events", sample("green", 2))
	t.Logf("green's change on /metrics after %s while blue is down", time.Since(start).Round(time.Millisecond))
	waitSamplesWithin(t, 30*time.Second, "fmmo_polled", sample("green", 2))
	createIn(t, blue.Client, buckets.object("v1beta1", "b2", "True", "True", nil, nil),
		buckets.object("v1beta1", "b3", "True", "True", nil, nil))

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	waitSamplesWithin(t, 40*time.Second, "fmmo_events", sample("blue", 3), sample("green", 2))
	t.Logf("event-driven: blue back with its current count %s after its API server answered", time.Since(start).Round(time.Millisecond))
	waitSamplesWithin(t, 40*time.Second, "fmmo_polled", sample("blue", 3), sample("green", 2))
	t.Logf("polling: blue back %s after its API server answered", time.Since(start).Round(time.Millisecond))
	for _, f := range []*v1alpha1.FederatedManagedMetric{events, polled} {
		waitFederated(t, f, 2, 0, v1alpha1.ReasonReady)
		waitResources(t, f, 5)
	}
	if up := selfMetric(t, "metrics_operator_cluster_up", "cluster", "blue"); up != 1 {
		t.Errorf("cluster_up{blue} %v after it recovered, want 1", up)
	}
	for _, o := range []client.Object{events, polled, &v1alpha1.FederatedClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: "planes", Namespace: ns}}} {
		if err := env.Client.Delete(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
}

// silentServer accepts connections and never answers on them: an API
// server that hangs. It is closed, with its connections, when the test
// ends.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + l.Addr().String()
}

// TestFederatedManagedMetricSilentCluster discovers two clusters, one of
// which accepts connections and never answers: in both modes the other
// cluster's series are published without waiting for it (nor for the
// access's probe of it), and the silent one is counted pending while the
// metric is Ready and says so.
func TestFederatedManagedMetricSilentCluster(t *testing.T) {
	testenv.Require(t, env)
	green := startRemote(t)
	ns := "fmm-silent"
	createNamespace(t, ns)
	buckets := fakeKind{group: "s3.fmms.test", kind: "Bucket", plural: "buckets", categories: crossplane}
	buckets.installIn(t, green.Client)
	createIn(t, green.Client, buckets.object("v1beta1", "b1", "True", "True", nil, nil))
	silent := fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: %q}}]
users: [{name: u, user: {token: not-checked}}]
`, silentServer(t))
	fca := federatedAccess(ns, "planes", v1alpha1.FederatedClusterAccessSpec{KubeConfigPath: "data.kubeconfig", LabelSelector: "fed=fmms", Namespace: ns})
	create(t,
		clusterConfigMap(ns, "green", "fmms", map[string]string{"kubeconfig": string(adminKubeconfig(t, green, "fmms-green"))}),
		clusterConfigMap(ns, "silent", "fmms", map[string]string{"kubeconfig": silent}), fca)
	events := federatedManagedMetric(ns, "events", "fmms_events", "planes", true)
	polled := federatedManagedMetric(ns, "polled", "fmms_polled", "planes", false)
	start := time.Now()
	create(t, events, polled)
	t.Cleanup(func() {
		for _, o := range []client.Object{events, polled, fca} {
			// t.Context() is cancelled before cleanups run.
			if err := env.Client.Delete(context.Background(), o); err != nil {
				t.Errorf("deleting %s: %v", o.GetName(), err)
			}
		}
	})
	sample := "{cluster=green,group=s3.fmms.test,kind=Bucket,ready=True,synced=True,version=v1beta2} 1"
	waitSamplesWithin(t, 30*time.Second, "fmms_events", sample)
	t.Logf("event-driven: green on /metrics %s after the metric was created", time.Since(start).Round(time.Millisecond))
	// The access writes its status once its probes end, the silent
	// cluster's after its 10 s timeout: green did not wait for it.
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(fca), fca); err != nil {
		t.Fatal(err)
	}
	if n := len(fca.Status.Clusters); n != 0 {
		t.Errorf("green was exported only after the access had probed the silent cluster (status.clusters has %d entries)", n)
	}
	waitSamplesWithin(t, 30*time.Second, "fmms_polled", sample)
	t.Logf("polling: green on /metrics %s after the metric was created", time.Since(start).Round(time.Millisecond))
	for _, f := range []*v1alpha1.FederatedManagedMetric{events, polled} {
		testenv.Eventually(t, 30*time.Second, func() error {
			if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(f), f); err != nil {
				return err
			}
			o := f.Status.Observation
			if o.ActiveCount != 1 || o.PendingCount != 1 || o.FailedCount != 0 || o.Resources != 1 {
				return fmt.Errorf("status.observation %+v, want 1 active, 1 pending, 1 resource", o)
			}
			if msg := readyMessage(f); f.Status.Ready != string(metav1.ConditionTrue) || !strings.Contains(msg, "1 clusters are not read yet") {
				return fmt.Errorf("ready %s: %q", f.Status.Ready, msg)
			}
			return nil
		})
	}
}
