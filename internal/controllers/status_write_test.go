package controllers_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/controllers"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// countPath is the API path of the Metric "count" of these tests (its
// status is "/status" more).
func countPath(ns string) string {
	return "/apis/metrics.cloud.sap/v1alpha1/namespaces/" + ns + "/metrics/count"
}

// waitCount waits until the stored status of the Metric "count" in ns
// passes check.
func waitCount(t *testing.T, ns string, check func(m *v1alpha1.Metric) error) *v1alpha1.Metric {
	t.Helper()
	m := &v1alpha1.Metric{}
	testenv.Eventually(t, eventTimeout, func() error {
		if err := env.Client.Get(t.Context(), key(ns, "count"), m); err != nil {
			return err
		}
		return check(m)
	})
	return m
}

// readyWith checks the Ready condition's status and the observed value.
func readyWith(status metav1.ConditionStatus, value string) func(*v1alpha1.Metric) error {
	return func(m *v1alpha1.Metric) error {
		c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Status != status || c.ObservedGeneration != m.Generation ||
			(value != "" && m.Status.Observation.LatestValue != value) {
			return fmt.Errorf("status = %+v, want Ready %s for generation %d with value %q", m.Status, status, m.Generation, value)
		}
		return nil
	}
}

func readyTime(m *v1alpha1.Metric) metav1.Time {
	return meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady).LastTransitionTime
}

// countEvents counts the Events about the Metric "count" in ns by
// "Type/Reason".
func countEvents(t *testing.T, ns string) map[string]int {
	t.Helper()
	var list eventsv1.EventList
	if err := env.Client.List(t.Context(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range list.Items {
		if e.Regarding.Kind == "Metric" && e.Regarding.Name == "count" {
			n := 1
			if e.Series != nil {
				n = max(n, int(e.Series.Count))
			}
			got[e.Type+"/"+e.Reason] += n
		}
	}
	return got
}

func waitCountEvents(t *testing.T, ns string, want map[string]int) {
	t.Helper()
	testenv.Eventually(t, eventTimeout, func() error {
		if got := countEvents(t, ns); !maps.Equal(got, want) {
			return fmt.Errorf("events %v, want %v", got, want)
		}
		return nil
	})
}

// TestStatusWritesNeedNoGet checks that the operator writes a Metric's
// status with one PATCH and no GET, that observation-only writes keep the
// Ready condition's lastTransitionTime and emit no Event, and that each
// Ready transition moves the time and emits one.
func TestStatusWritesNeedNoGet(t *testing.T) {
	testenv.Require(t, env)
	ns := "status-noget"
	createNamespace(t, ns)
	m := eventDriven(ns, "count", v1alpha1.MetricSpec{Name: "status_noget",
		Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns})
	create(t, m)
	m = waitCount(t, ns, readyWith(metav1.ConditionTrue, "0"))
	since := readyTime(m)
	waitCountEvents(t, ns, map[string]int{"Normal/Ready": 1})

	for i := 1; i <= 3; i++ {
		create(t, configMap(ns, fmt.Sprint("cm", i), nil))
		m = waitCount(t, ns, readyWith(metav1.ConditionTrue, fmt.Sprint(i)))
		if got := readyTime(m); !got.Equal(&since) {
			t.Fatalf("Ready's lastTransitionTime moved from %s to %s without a transition", since, got)
		}
	}
	if n := requests.Count("GET", countPath(ns)); n != 0 {
		t.Errorf("%d GETs of the Metric, want none", n)
	}
	if n := requests.Count("PATCH", countPath(ns)+"/status"); n < 4 {
		t.Errorf("%d status PATCHes, want one per observation (at least 4)", n)
	}
	if got := countEvents(t, ns); !maps.Equal(got, map[string]int{"Normal/Ready": 1}) {
		t.Errorf("events %v after observation-only writes, want the first Ready only", got)
	}
	// Nothing changes: nothing is written, in three status intervals
	// (the echoes of the operator's own writes are not taken for
	// another writer's).
	patches := requests.Count("PATCH", countPath(ns)+"/status")
	time.Sleep(3 * time.Second)
	if n := requests.Count("PATCH", countPath(ns)+"/status"); n != patches {
		t.Errorf("%d status PATCHes while nothing changed, want none", n-patches)
	}

	// Two transitions: to TargetNotFound and back. The first waits for the
	// next second, so that a moved lastTransitionTime shows.
	time.Sleep(time.Until(since.Add(1100 * time.Millisecond)))
	testenv.Update(t, env.Client, m, func() {
		m.Spec.Target = v1alpha1.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}
	})
	m = waitCount(t, ns, readyWith(metav1.ConditionFalse, ""))
	failed := readyTime(m)
	if !failed.After(since.Time) {
		t.Errorf("lastTransitionTime %s of the transition to False is not after %s", failed, since)
	}
	time.Sleep(time.Until(failed.Add(1100 * time.Millisecond)))
	testenv.Update(t, env.Client, m, func() { m.Spec.Target = v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"} })
	m = waitCount(t, ns, readyWith(metav1.ConditionTrue, "3"))
	if back := readyTime(m); !back.After(failed.Time) {
		t.Errorf("lastTransitionTime %s of the transition back to True is not after %s", back, failed)
	}
	waitCountEvents(t, ns, map[string]int{"Normal/Ready": 2, "Warning/TargetNotFound": 1})
	if n := requests.Count("GET", countPath(ns)); n != 0 {
		t.Errorf("%d GETs of the Metric, want none", n)
	}
}

// updateStatus edits the Metric's stored status as `kubectl edit` would,
// again on a conflict with the operator's writes.
func updateStatus(t *testing.T, m *v1alpha1.Metric, mutate func()) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(m), m); err != nil {
			return err
		}
		mutate()
		return env.Client.Status().Update(t.Context(), m)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStatusOverwrittenByAnotherWriter edits a Metric's status as a user
// with `kubectl edit` (or an older replica) would: the operator writes it
// again although its metric did not change, keeps a condition it does not
// own, and dates the Ready transition the other writer caused.
func TestStatusOverwrittenByAnotherWriter(t *testing.T) {
	testenv.Require(t, env)
	ns := "status-other-writer"
	createNamespace(t, ns)
	create(t, configMap(ns, "a", nil),
		eventDriven(ns, "count", v1alpha1.MetricSpec{Name: "status_other_writer",
			Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns}))
	m := waitCount(t, ns, readyWith(metav1.ConditionTrue, "1"))
	since := readyTime(m)

	// Another value, and a condition of someone else's.
	long := metav1.NewTime(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	updateStatus(t, m, func() {
		m.Status.Observation.LatestValue = "999"
		meta.SetStatusCondition(&m.Status.Conditions, metav1.Condition{Type: "Audited", Status: metav1.ConditionTrue,
			Reason: "Manual", Message: "looked at", LastTransitionTime: long})
	})
	m = waitCount(t, ns, readyWith(metav1.ConditionTrue, "1"))
	if got := readyTime(m); !got.Equal(&since) {
		t.Errorf("Ready's lastTransitionTime moved from %s to %s without a transition", since, got)
	}
	if c := meta.FindStatusCondition(m.Status.Conditions, "Audited"); c == nil || !c.LastTransitionTime.Equal(&long) {
		t.Errorf("conditions %+v, want the Audited condition kept", m.Status.Conditions)
	}

	// The other writer turns Ready False: the operator turns it back and
	// dates that transition now.
	edited := time.Now().Truncate(time.Second)
	updateStatus(t, m, func() {
		meta.SetStatusCondition(&m.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
			Reason: "Edited", Message: "by hand", ObservedGeneration: m.Generation, LastTransitionTime: long})
	})
	m = waitCount(t, ns, readyWith(metav1.ConditionTrue, "1"))
	if got := readyTime(m); got.Before(&metav1.Time{Time: edited}) {
		t.Errorf("Ready's lastTransitionTime %s, want the time of the transition back (%s or later)", got, edited)
	}
	waitCountEvents(t, ns, map[string]int{"Normal/Ready": 2})
	if n := requests.Count("GET", countPath(ns)); n != 0 {
		t.Errorf("%d GETs of the Metric, want none", n)
	}
}

// TestStatusOfARecreatedMetric deletes a Metric and creates it again
// under the same name at once: the new object gets a status of its own,
// whatever the operator wrote on the old one.
func TestStatusOfARecreatedMetric(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "status-recreated"
	createNamespace(t, ns)
	spec := v1alpha1.MetricSpec{Name: "status_recreated", Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns}
	create(t, configMap(ns, "a", nil), eventDriven(ns, "count", spec))
	old := waitCount(t, ns, readyWith(metav1.ConditionTrue, "1"))
	if err := env.Client.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	create(t, eventDriven(ns, "count", spec))
	m := waitCount(t, ns, func(m *v1alpha1.Metric) error {
		if m.UID == old.UID {
			return fmt.Errorf("still the old object")
		}
		return readyWith(metav1.ConditionTrue, "1")(m)
	})
	if got := readyTime(m); got.Before(&m.CreationTimestamp) {
		t.Errorf("Ready's lastTransitionTime %s is before the new object's creation %s", got, m.CreationTimestamp)
	}
}

// eventLog records the Events a status writer emits.
type eventLog struct {
	mu      sync.Mutex
	reasons []string
}

func (l *eventLog) Eventf(_ runtime.Object, _ runtime.Object, eventtype, reason, _, _ string, _ ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reasons = append(l.reasons, eventtype+"/"+reason)
}

func (l *eventLog) recorded() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.reasons...)
}

var _ events.EventRecorder = (*eventLog)(nil)

// freshWriter is a MetricStatusWriter as a newly started replica has it:
// its own informer cache and client, nothing written yet. stop stops its
// cache, whose copies then stay as they were.
func freshWriter(t testing.TB) (w *controllers.MetricStatusWriter, rec *eventLog, reqs *testenv.RequestCounter, stop func()) {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	reqs = testenv.NewRequestCounter()
	cfg.Wrap(reqs.Wrap)
	scheme := operator.NewScheme()
	ca, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ca.Start(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	if !ca.WaitForCacheSync(ctx) {
		t.Fatal("the cache did not start")
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme, Cache: &client.CacheOptions{Reader: ca}})
	if err != nil {
		t.Fatal(err)
	}
	rec = &eventLog{}
	return &controllers.MetricStatusWriter{Client: c, Recorder: rec}, rec, reqs, sync.OnceFunc(stop)
}

// TestStatusWriteOfAFreshWriter writes a Metric's status as a replica
// that just took over would (the operator of the suite wrote it before):
// a status its cache shows already is not written; a new observation is
// one PATCH and no GET, keeps the Ready condition's time and emits no
// Event; a transition is dated and told.
func TestStatusWriteOfAFreshWriter(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "status-fresh-writer"
	createNamespace(t, ns)
	create(t, configMap(ns, "a", nil), eventDriven(ns, "count", v1alpha1.MetricSpec{Name: "status_fresh_writer",
		Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns}))
	m := waitCount(t, ns, readyWith(metav1.ConditionTrue, "1"))
	since := readyTime(m)

	w, rec, reqs, _ := freshWriter(t)
	key := coordinator.Key{Kind: "Metric", Namespace: ns, Name: "count"}
	stored := *meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady)
	stored.LastTransitionTime = metav1.Time{}
	s := coordinator.Status{Generation: m.Status.ObservedGeneration, Mode: m.Status.Mode, Observed: true,
		Timestamp: m.Status.Observation.Timestamp.Time, Total: 1, Series: int(m.Status.Observation.Series), Ready: stored}
	if err := w.WriteStatus(ctx, key, s); err != nil {
		t.Fatal(err)
	}
	p := countPath(ns)
	if n := reqs.Count("PATCH", p+"/status"); n != 0 {
		t.Errorf("%d status PATCHes of the status the cache shows, want none", n)
	}

	s.Timestamp = s.Timestamp.Add(time.Minute)
	if err := w.WriteStatus(ctx, key, s); err != nil {
		t.Fatal(err)
	}
	if g, pt := reqs.Count("GET", p), reqs.Count("PATCH", p+"/status"); g != 0 || pt != 1 {
		t.Errorf("%d GETs and %d status PATCHes of a new observation, want none and one", g, pt)
	}
	if got := rec.recorded(); len(got) != 0 {
		t.Errorf("events %v, want none: Ready stayed True", got)
	}
	// The operator of the suite writes its own observation again (another
	// writer changed it), keeping the time too.
	if err := env.Client.Get(ctx, clientKey(ns, "count"), m); err != nil {
		t.Fatal(err)
	}
	if got := readyTime(m); !got.Equal(&since) {
		t.Errorf("Ready's lastTransitionTime moved from %s to %s without a transition", since, got)
	}

	s.Ready.Status, s.Ready.Reason, s.Ready.Message = metav1.ConditionFalse, v1alpha1.ReasonExportFailed, "down"
	if err := w.WriteStatus(ctx, key, s); err != nil {
		t.Fatal(err)
	}
	if got := rec.recorded(); len(got) != 1 || got[0] != "Warning/"+v1alpha1.ReasonExportFailed {
		t.Errorf("events %v, want one Warning/%s", got, v1alpha1.ReasonExportFailed)
	}
	if g := reqs.Count("GET", p); g != 0 {
		t.Errorf("%d GETs, want none", g)
	}
}

// TestStatusWriteMissesAReplacedObject writes with a cache that still
// holds a deleted Metric while one of the same name replaced it: the
// write fails instead of landing on the new object.
func TestStatusWriteMissesAReplacedObject(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "status-replaced"
	createNamespace(t, ns)
	spec := v1alpha1.MetricSpec{Name: "status_replaced", Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns}
	create(t, eventDriven(ns, "count", spec))
	old := waitCount(t, ns, readyWith(metav1.ConditionTrue, "0"))

	w, _, _, stop := freshWriter(t)
	key := coordinator.Key{Kind: "Metric", Namespace: ns, Name: "count"}
	if err := w.Client.Get(ctx, clientKey(ns, "count"), &v1alpha1.Metric{}); err != nil { // fills its cache
		t.Fatal(err)
	}
	stop()
	if err := env.Client.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	create(t, eventDriven(ns, "count", spec))
	m := waitCount(t, ns, func(m *v1alpha1.Metric) error {
		if m.UID == old.UID {
			return fmt.Errorf("still the old object")
		}
		return readyWith(metav1.ConditionTrue, "0")(m)
	})
	s := coordinator.Status{Generation: 1, Mode: v1alpha1.ModeEventDriven, Observed: true, Timestamp: time.Now(), Total: 4242,
		Ready: metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonReady, Message: "x"}}
	err := w.WriteStatus(ctx, key, s)
	if !apierrors.IsInvalid(err) {
		t.Errorf("writing with the old object's UID: %v, want the API server's refusal (422)", err)
	}
	if err := env.Client.Get(ctx, clientKey(ns, "count"), m); err != nil {
		t.Fatal(err)
	}
	if v := m.Status.Observation.LatestValue; v != "0" {
		t.Errorf("the new object's latestValue is %q, want the operator's 0", v)
	}
}

// BenchmarkStatusWrite writes a Metric's status as the coordinator's
// status worker does, through a MetricStatusWriter with an informer cache
// of its own, alternating between two observations: one PATCH per
// write. Profile it (-cpuprofile) for the writer's own CPU: the process
// also decodes each write's echo, in that cache and in the suite's
// operator.
func BenchmarkStatusWrite(b *testing.B) {
	testenv.Require(b, env)
	ctx := b.Context()
	ns := "status-bench"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	m := eventDriven(ns, "count", v1alpha1.MetricSpec{Name: "status_bench",
		Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns})
	if err := env.Client.Create(ctx, m); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	w, _, reqs, _ := freshWriter(b)
	key := coordinator.Key{Kind: "Metric", Namespace: ns, Name: "count"}
	s := coordinator.Status{Generation: 1, Mode: v1alpha1.ModeEventDriven, Observed: true, Series: 1,
		Ready: metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonReady,
			Message: "exporting 1 series", ObservedGeneration: 1}}
	path := countPath(ns) + "/status"
	before := reqs.Count("PATCH", path)
	for b.Loop() {
		s.Total++
		s.Timestamp = time.Now()
		if err := w.WriteStatus(ctx, key, s); err != nil {
			b.Fatal(err)
		}
	}
	if n := reqs.Count("PATCH", path) - before; n != b.N {
		b.Fatalf("%d PATCHes for %d writes", n, b.N)
	}
}
