package controllers_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// eventTimeout is how long an event-driven change may take to show. The
// metrics use a 1h interval, so nothing but events can make them pass.
const eventTimeout = 10 * time.Second

func eventDriven(ns, name string, spec v1alpha1.MetricSpec) *v1alpha1.Metric {
	spec.EventDriven = ptr.To(true)
	spec.Interval = metav1.Duration{Duration: time.Hour}
	return newMetric(ns, name, spec)
}

// waitSamplesWithin is waitSamples with a deadline of its own.
func waitSamplesWithin(t *testing.T, timeout time.Duration, family string, want ...string) {
	t.Helper()
	slices.Sort(want)
	testenv.Eventually(t, timeout, func() error {
		fams, err := scrape.Families(metricsURL)
		if err != nil {
			return err
		}
		if got := scrape.Strings(scrape.Samples(fams, family)); !slices.Equal(got, want) {
			return fmt.Errorf("%s = %v, want %v", family, got, want)
		}
		return nil
	})
}

func configMapsKey(ns string) registry.InformerKey {
	return registry.InformerKey{Cluster: "local", GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespace: ns}
}

func informerActive(key registry.InformerKey) bool {
	return slices.Contains(op.Informers.Active(), key)
}

// TestEventDrivenCreateUpdateDelete is the seed's test list: creating,
// updating and deleting targets changes /metrics and what the OTLP
// receiver gets in real time, and the informer goes with the metric.
func TestEventDrivenCreateUpdateDelete(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "ed-crud"
	createNamespace(t, ns)
	sink := otlpsink.Start(t)
	create(t, &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "collector", Namespace: ns},
		Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: sink.HTTPURL()}}})
	m := eventDriven(ns, "teams", v1alpha1.MetricSpec{
		Name:        "ed_teams",
		Target:      v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
		Namespace:   ns,
		Projections: []v1alpha1.Projection{{Name: "team", FieldPath: "metadata.labels.team"}},
		DataSinkRef: &v1alpha1.DataSinkReference{Name: "collector"},
	})
	create(t, configMap(ns, "a", map[string]string{"team": "red"}), m)
	waitSamplesWithin(t, eventTimeout, "ed_teams", "{cluster=local,kind=ConfigMap,team=red,version=v1} 1")

	point := func(team string) string {
		return fmt.Sprint(map[string]string{"cluster": "local", "kind": "ConfigMap", "team": team, "version": "v1"})
	}
	// Create.
	b := configMap(ns, "b", map[string]string{"team": "blue"})
	create(t, b)
	waitSamplesWithin(t, eventTimeout, "ed_teams",
		"{cluster=local,kind=ConfigMap,team=blue,version=v1} 1", "{cluster=local,kind=ConfigMap,team=red,version=v1} 1")
	waitPoints(t, sink, "ed_teams", map[string]int64{point("red"): 1, point("blue"): 1})

	// Update: b changes team.
	b.Labels["team"] = "red"
	if err := env.Client.Update(ctx, b); err != nil {
		t.Fatal(err)
	}
	waitSamplesWithin(t, eventTimeout, "ed_teams", "{cluster=local,kind=ConfigMap,team=red,version=v1} 2")
	waitPoints(t, sink, "ed_teams", map[string]int64{point("red"): 2})

	// Delete.
	if err := env.Client.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	waitSamplesWithin(t, eventTimeout, "ed_teams", "{cluster=local,kind=ConfigMap,team=red,version=v1} 1")
	waitPoints(t, sink, "ed_teams", map[string]int64{point("red"): 1})

	if !informerActive(configMapsKey(ns)) {
		t.Fatalf("no informer for %v; active: %v", configMapsKey(ns), op.Informers.Active())
	}
	if err := env.Client.Get(ctx, key(ns, "teams"), m); err != nil {
		t.Fatal(err)
	}
	if m.Status.Mode != v1alpha1.ModeEventDriven {
		t.Errorf("status.mode = %q, want EventDriven", m.Status.Mode)
	}
	// Deleting the metric stops its informer and removes its family.
	if err := env.Client.Delete(ctx, m); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, eventTimeout, func() error {
		if informerActive(configMapsKey(ns)) {
			return fmt.Errorf("informer still running")
		}
		return nil
	})
	waitSamplesWithin(t, eventTimeout, "ed_teams")
}

// TestEventDrivenOneWatchNoLists registers 50 metrics with different
// selectors on one resource and checks, at the operator's transport, that
// they share one watch, and that 1,000 updates after the sync cause no
// LIST and a bounded number of pushes.
func TestEventDrivenOneWatchNoLists(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "ed-shared"
	createNamespace(t, ns)
	sink := otlpsink.Start(t)
	create(t, &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "collector", Namespace: ns},
		Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: sink.HTTPURL()}}})
	const objects = 20
	cms := make([]*corev1.ConfigMap, objects)
	for i := range cms {
		cms[i] = configMap(ns, "cm-"+strconv.Itoa(i), map[string]string{"group": strconv.Itoa(i % 5), "step": "0"})
		create(t, cms[i])
	}
	const metrics = 50
	for i := range metrics {
		spec := v1alpha1.MetricSpec{
			Name:          "ed_shared_" + strconv.Itoa(i),
			Target:        v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Namespace:     ns,
			LabelSelector: "group=" + strconv.Itoa(i%5),
			Projections:   []v1alpha1.Projection{{Name: "step", FieldPath: "metadata.labels.step"}},
		}
		if i%2 == 0 {
			spec.LabelSelector = "group!=" + strconv.Itoa(i%5)
		}
		if i < 5 {
			spec.DataSinkRef = &v1alpha1.DataSinkReference{Name: "collector"}
		}
		create(t, eventDriven(ns, "m"+strconv.Itoa(i), spec))
	}
	// Every metric has its objects: 4 per group, 16 outside one.
	for i := range metrics {
		want := 4
		if i%2 == 0 {
			want = 16
		}
		waitSamplesWithin(t, 30*time.Second, "ed_shared_"+strconv.Itoa(i),
			fmt.Sprintf("{cluster=local,kind=ConfigMap,step=0,version=v1} %d", want))
	}
	path := "/api/v1/namespaces/" + ns + "/configmaps"
	if err := requests.CheckSharedWatch(path); err != nil {
		t.Fatalf("50 metrics do not share one watch: %v", err)
	}
	if !informerActive(configMapsKey(ns)) || len(op.Informers.Active()) == 0 {
		t.Fatalf("informer for %s not active", path)
	}

	lists := requests.Reads(path)
	pushesBefore := sink.Count()
	start := time.Now()
	const updates = 1000
	for u := range updates {
		cm := cms[u%objects]
		cm.Labels["step"] = strconv.Itoa(u/objects + 1)
		if err := env.Client.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	final := strconv.Itoa(updates / objects)
	waitSamplesWithin(t, 30*time.Second, "ed_shared_1", "{cluster=local,kind=ConfigMap,step="+final+",version=v1} 4")
	waitSamplesWithin(t, 30*time.Second, "ed_shared_0", "{cluster=local,kind=ConfigMap,step="+final+",version=v1} 16")
	elapsed := time.Since(start)
	if n := requests.Reads(path) - lists; n != 0 {
		t.Errorf("%d updates caused %d LIST requests, want 0", updates, n)
	}
	if err := requests.CheckSharedWatch(path); err != nil {
		t.Errorf("after the updates: %v", err)
	}
	// Five metrics push; each at most once per min-export-interval (500ms
	// in this suite) plus its first push.
	time.Sleep(time.Second) // let the last coalesced pushes land
	pushes := sink.Count() - pushesBefore
	bound := 5 * (int((elapsed+time.Second)/(500*time.Millisecond)) + 2)
	t.Logf("%d updates in %s: %d LISTs, %d pushes (bound %d)", updates, elapsed.Round(time.Millisecond),
		requests.Reads(path)-lists, pushes, bound)
	if pushes > bound || pushes == 0 {
		t.Errorf("%d pushes for %d updates in %s, want between 1 and %d", pushes, updates, elapsed, bound)
	}
}

// TestPollingAndEventDrivenAgree evaluates one spec in both modes.
func TestPollingAndEventDrivenAgree(t *testing.T) {
	testenv.Require(t, env)
	ns := "ed-agree"
	createNamespace(t, ns)
	for i := range 12 {
		labels := map[string]string{"tier": []string{"web", "db", "cache"}[i%3]}
		if i%4 == 0 {
			labels["env"] = "prod"
		}
		cm := configMap(ns, "cm-"+strconv.Itoa(i), labels)
		cm.Data = map[string]string{"size": strconv.Itoa(i * 10)}
		create(t, cm)
	}
	spec := func(name string) v1alpha1.MetricSpec {
		return v1alpha1.MetricSpec{
			Name:      name,
			Target:    v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Namespace: ns,
			Projections: []v1alpha1.Projection{
				{Name: "tier", FieldPath: "metadata.labels.tier"},
				{Name: "env", FieldPath: "metadata.labels.env"},
				{Name: "size", FieldPath: "data.size"},
			},
			FieldSelector: "metadata.name!=cm-1",
		}
	}
	create(t, newMetric(ns, "polling", spec("agree_polling")), eventDriven(ns, "eventdriven", spec("agree_eventdriven")))
	testenv.Eventually(t, pollTimeout, func() error {
		fams, err := scrape.Families(metricsURL)
		if err != nil {
			return err
		}
		p := scrape.Strings(scrape.Samples(fams, "agree_polling"))
		e := scrape.Strings(scrape.Samples(fams, "agree_eventdriven"))
		if len(p) != 11 || !slices.Equal(p, e) {
			return fmt.Errorf("polling %v\nevent-driven %v", p, e)
		}
		return nil
	})
}

// TestSwitchingModesKeepsSeries flips a live metric between modes and
// checks that its series never go missing.
func TestSwitchingModesKeepsSeries(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "ed-switch"
	createNamespace(t, ns)
	create(t, configMap(ns, "a", nil), configMap(ns, "b", nil))
	m := newMetric(ns, "switch", v1alpha1.MetricSpec{Name: "switch_count",
		Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns})
	create(t, m)
	want := "{cluster=local,kind=ConfigMap,version=v1} 2"
	waitSamples(t, "switch_count", want)

	stop := make(chan struct{})
	gaps := make(chan string, 1)
	go func() {
		for {
			select {
			case <-stop:
				close(gaps)
				return
			default:
			}
			fams, err := scrape.Families(metricsURL)
			if err == nil {
				if got := scrape.Strings(scrape.Samples(fams, "switch_count")); !slices.Equal(got, []string{want}) {
					select {
					case gaps <- fmt.Sprint(got):
					default:
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	setMode := func(mode string, want v1alpha1.UpdateMode) {
		t.Helper()
		testenv.Update(t, env.Client, m, func() {
			if m.Annotations == nil {
				m.Annotations = map[string]string{}
			}
			m.Annotations[v1alpha1.EventDrivenAnnotation] = mode
		})
		testenv.Eventually(t, pollTimeout, func() error {
			if err := env.Client.Get(ctx, key(ns, "switch"), m); err != nil {
				return err
			}
			if m.Status.Mode != want {
				return fmt.Errorf("status.mode = %q, want %q", m.Status.Mode, want)
			}
			return nil
		})
	}
	setMode("true", v1alpha1.ModeEventDriven)
	close(stop)
	if g, ok := <-gaps; ok {
		t.Fatalf("switching to event-driven showed %s", g)
	}
	create(t, configMap(ns, "c", nil))
	want2 := "{cluster=local,kind=ConfigMap,version=v1} 3"
	waitSamplesWithin(t, eventTimeout, "switch_count", want2)
	setMode("false", v1alpha1.ModePolling)
	waitSamples(t, "switch_count", want2)
	testenv.Eventually(t, eventTimeout, func() error {
		if informerActive(configMapsKey(ns)) {
			return fmt.Errorf("informer still running after the switch back to polling")
		}
		return nil
	})
}

// TestEventDrivenRetarget moves a live metric to another namespace and
// selector: the old watch stops, the new one serves it, and objects
// moving out of the selector leave its series.
func TestEventDrivenRetarget(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	from, to := "ed-retarget-a", "ed-retarget-b"
	createNamespace(t, from)
	createNamespace(t, to)
	create(t, configMap(from, "x", map[string]string{"keep": "yes"}),
		configMap(to, "y", map[string]string{"keep": "yes"}), configMap(to, "z", map[string]string{"keep": "yes"}))
	m := eventDriven(from, "retarget", v1alpha1.MetricSpec{Name: "ed_retarget",
		Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: from, LabelSelector: "keep=yes"})
	create(t, m)
	waitSamplesWithin(t, eventTimeout, "ed_retarget", "{cluster=local,kind=ConfigMap,version=v1} 1")

	testenv.Update(t, env.Client, m, func() { m.Spec.Namespace = to })
	waitSamplesWithin(t, eventTimeout, "ed_retarget", "{cluster=local,kind=ConfigMap,version=v1} 2")
	testenv.Eventually(t, eventTimeout, func() error {
		if informerActive(configMapsKey(from)) || !informerActive(configMapsKey(to)) {
			return fmt.Errorf("active informers %v: want %s only", op.Informers.Active(), to)
		}
		return nil
	})

	// z leaves the selector: its contribution goes at once.
	z := &corev1.ConfigMap{}
	if err := env.Client.Get(ctx, key(to, "z"), z); err != nil {
		t.Fatal(err)
	}
	z.Labels["keep"] = "no"
	if err := env.Client.Update(ctx, z); err != nil {
		t.Fatal(err)
	}
	waitSamplesWithin(t, eventTimeout, "ed_retarget", "{cluster=local,kind=ConfigMap,version=v1} 1")
}
