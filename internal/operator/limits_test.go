package operator_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// bigObjects is how many ConfigMaps the over-limit metrics read: twice
// the default series limit.
const bigObjects = 20000

// Resident memory the operator process stays within with the over-limit
// metrics on bigObjects objects (stated in the README): event-driven ones
// hold nothing once over their limit; a polling read holds its whole list
// while it is evaluated, whatever the limits, so two polls of 20,000
// objects cost more.
const (
	rssBoundEventDriven = 160 << 20
	rssBoundWithPolling = 400 << 20
)

// TestSeriesLimitsBoundMemory runs the operator binary, with its default
// limits, beside 20,000 ConfigMaps and gives it a metric projecting
// metadata.uid (a series per object) and one projecting the whole object
// as a map, event-driven first, then polling. Each reports its limit and
// exports nothing, the process stays within its memory bounds, and a
// metric beside them stays current. The latency of that metric's changes with and without them is
// logged, for the record, not asserted: this machine is shared.
func TestSeriesLimitsBoundMemory(t *testing.T) {
	testenv.Require(t, env)
	operatorBinary(t)
	ctx := t.Context()
	big, small := "limits-big", "limits-small"
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: big}})
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: small}})
	start := time.Now()
	createConfigMaps(t, big, bigObjects)
	t.Cleanup(func() {
		// The control plane is shared with the package's other tests.
		_ = env.Client.DeleteAllOf(context.Background(), &corev1.ConfigMap{}, client.InNamespace(big))
	})
	t.Logf("created %d ConfigMaps in %s", bigObjects, time.Since(start).Round(time.Second))
	watched := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "watched", Namespace: small, Labels: map[string]string{"step": "0"}}}
	mustCreate(t, watched)

	p := startProcess(t, small)
	cm := v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	mustCreate(t, &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "neighbour", Namespace: small},
		Spec: v1alpha1.MetricSpec{Name: "limits_neighbour", Target: cm, Namespace: small, EventDriven: ptr.To(true),
			Interval: metav1.Duration{Duration: time.Hour}, Projections: []v1alpha1.Projection{{Name: "step", FieldPath: "metadata.labels.step"}}}})
	waitFamily(t, p.metricsURL, "limits_neighbour", "{cluster=local,kind=ConfigMap,step=0,version=v1} 1")

	step := 0
	latencies := func() []time.Duration {
		var out []time.Duration
		for range 20 {
			step++
			want := fmt.Sprintf("{cluster=local,kind=ConfigMap,step=%d,version=v1} 1", step)
			before := watched.DeepCopy()
			watched.Labels["step"] = strconv.Itoa(step)
			t0 := time.Now()
			if err := env.Client.Patch(ctx, watched, client.MergeFrom(before)); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 10*time.Second, func() error {
				fams, err := scrape.Families(p.metricsURL)
				if err != nil {
					return err
				}
				if got := scrape.Strings(scrape.Samples(fams, "limits_neighbour")); !slices.Equal(got, []string{want}) {
					return fmt.Errorf("limits_neighbour = %v, want %s", got, want)
				}
				return nil
			})
			out = append(out, time.Since(t0))
		}
		return out
	}
	without := latencies()
	rssBefore, _ := p.memory(t)

	spec := func(name string, eventDriven bool, projection v1alpha1.Projection) *v1alpha1.Metric {
		return &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: small},
			Spec: v1alpha1.MetricSpec{Target: cm, Namespace: big, EventDriven: ptr.To(eventDriven),
				Interval: metav1.Duration{Duration: time.Hour}, Projections: []v1alpha1.Projection{projection}}}
	}
	uid := v1alpha1.Projection{Name: "uid", FieldPath: "metadata.uid"}
	whole := v1alpha1.Projection{Name: "object", FieldPath: ".", Type: v1alpha1.ProjectionMap}
	refused := func(ms ...*v1alpha1.Metric) {
		t.Helper()
		for _, m := range ms {
			mustCreate(t, m)
		}
		for _, m := range ms {
			testenv.Eventually(t, 120*time.Second, func() error {
				if err := env.Client.Get(ctx, client.ObjectKeyFromObject(m), m); err != nil {
					return err
				}
				for _, c := range m.Status.Conditions {
					if c.Type == v1alpha1.ConditionReady && c.Status == metav1.ConditionFalse &&
						(c.Reason == v1alpha1.ReasonSeriesLimitExceeded || c.Reason == v1alpha1.ReasonLabelValueTooLong) {
						t.Logf("%s: %s: %s", m.Name, c.Reason, c.Message)
						return nil
					}
				}
				return fmt.Errorf("%s: conditions %v, want a limit", m.Name, m.Status.Conditions)
			})
		}
		fams, err := scrape.Families(p.metricsURL)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if got := scrape.Samples(fams, m.MetricName()); len(got) != 0 {
				t.Errorf("%s over its limit serves %d samples", m.Name, len(got))
			}
		}
	}
	checkMemory := func(phase string, bound int64) {
		t.Helper()
		rss, peak := p.memory(t)
		t.Logf("RSS %s: %d MiB now, peak %d MiB (bound %d MiB; %d MiB with the neighbour only)",
			phase, rss>>20, peak>>20, bound>>20, rssBefore>>20)
		if peak > bound {
			t.Errorf("peak RSS %s is %d MiB, over the bound of %d MiB", phase, peak>>20, bound>>20)
		}
	}

	refused(spec("uids-events", true, uid), spec("whole-events", true, whole))
	with := latencies()
	checkMemory("with the event-driven ones", rssBoundEventDriven)
	t.Logf("neighbour event -> /metrics: p50/p99 %v/%v without, %v/%v with the over-limit metrics (20 changes each, scrape-polled)",
		percentile(without, 50), percentile(without, 99), percentile(with, 50), percentile(with, 99))

	refused(spec("uids-polling", false, uid), spec("whole-polling", false, whole))
	latencies()
	checkMemory("with the polling ones too", rssBoundWithPolling)
}

// createConfigMaps creates n small ConfigMaps in ns, many at a time.
func createConfigMaps(t *testing.T, ns string, n int) {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, 0 // no client-side throttling
	c, err := client.New(cfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				err := c.Create(ctx, &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%05d", i), Namespace: ns, Labels: map[string]string{"app": "bulk"}},
					Data:       map[string]string{"index": strconv.Itoa(i)},
				})
				if err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)*p+99)/100-1]
}
