package coordinator

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/evaluation"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
)

// statuses records the last status written per metric.
type statuses struct {
	mu   sync.Mutex
	last map[Key]Status
}

func (s *statuses) WriteStatus(_ context.Context, key Key, st Status) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last = map[Key]Status{}
	}
	s.last[key] = st
	return nil
}

func (s *statuses) ready(key Key) metav1.Condition {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[key].Ready
}

// served scrapes the collector in the text format and returns the
// samples of family name.
func served(t *testing.T, c *Coordinator, name string) []string {
	t.Helper()
	var b bytes.Buffer
	if err := c.opts.Prometheus.WriteText(&b, nil); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(&b)
	if err != nil {
		t.Fatal(err)
	}
	got := scrape.Strings(scrape.Samples(fams, name))
	slices.Sort(got)
	return got
}

// TestNameOwnership checks that of the metrics declaring one family name
// the oldest (creation time, then kind/namespace/name) owns it: only its
// series are served and pushed, the others report DuplicateName naming
// the owner, and the next in line takes over when the owner goes or
// changes its name.
func TestNameOwnership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sinks := datasink.NewStore()
		sink := types.NamespacedName{Namespace: "ns", Name: "sink"}
		sinks.Set(sink, &datasink.Target{Fingerprint: "x"}, nil)
		rec, st := &recorder{}, &statuses{}
		c := newCoordinator(t, Options{MinExportInterval: time.Millisecond, Sinks: sinks, Exporter: rec,
			Prometheus: promexport.NewCollector(), StatusWriters: map[string]StatusWriter{"Metric": st}})
		_, stop := run(t, c)
		defer stop()

		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		metric := func(name, exported string, created time.Time, value int64) Update {
			return Update{Key: Key{Kind: "Metric", Namespace: "ns", Name: name}, Name: exported, Created: created,
				DimensionNames: []string{"v"}, Interval: time.Hour, Sink: SinkRef{NamespacedName: sink, Explicit: true}, Source: &valueSource{value: value}}
		}
		older := metric("older", "dupe", t0, 1)
		younger := metric("younger", "dupe", t0.Add(time.Second), 2)
		twin := metric("z-twin", "dupe", t0.Add(time.Second), 3) // as old as younger; its name sorts after
		check := func(key Key, status metav1.ConditionStatus, reason, name, owner string) {
			t.Helper()
			synctest.Wait()
			r := st.ready(key)
			if r.Status != status || r.Reason != reason {
				t.Fatalf("%s: Ready %s/%s, want %s/%s (%s)", key, r.Status, r.Reason, status, reason, r.Message)
			}
			want := `metric name "` + name + `" is already exported by the older ` + owner + "; "
			if owner != "" && !strings.HasPrefix(r.Message, want) {
				t.Fatalf("%s: message %q, want it to start %q", key, r.Message, want)
			}
		}
		pushed := func(name string) int64 {
			t.Helper()
			time.Sleep(time.Second)
			synctest.Wait()
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for i := len(rec.pushes) - 1; i >= 0; i-- {
				if rec.pushes[i].Name == name {
					return rec.pushes[i].Points[0].Value
				}
			}
			return -1
		}

		// The younger ones publish first; the older one takes the name.
		c.Publish(younger, true)
		c.Publish(twin, true)
		check(twin.Key, metav1.ConditionFalse, v1alpha1.ReasonDuplicateName, "dupe", "Metric/ns/younger")
		c.Publish(older, true)
		check(younger.Key, metav1.ConditionFalse, v1alpha1.ReasonDuplicateName, "dupe", "Metric/ns/older")
		check(twin.Key, metav1.ConditionFalse, v1alpha1.ReasonDuplicateName, "dupe", "Metric/ns/older")
		check(older.Key, metav1.ConditionTrue, v1alpha1.ReasonReady, "", "")
		if got := served(t, c, "dupe"); !slices.Equal(got, []string{"{cluster=local,v=1} 1"}) {
			t.Fatalf("served %v, want the older metric's series only", got)
		}
		rec.mu.Lock()
		rec.pushes = nil
		rec.mu.Unlock()
		older.Source.(*valueSource).set(10)
		younger.Source.(*valueSource).set(20)
		c.Changed(older.Key)
		c.Changed(younger.Key)
		if v := pushed("dupe"); v != 10 {
			t.Fatalf("pushed %d, want only the owner's 10", v)
		}

		// The owner goes: the next in line (younger, whose name sorts
		// before twin's) takes over, with its current series.
		c.Remove(older.Key)
		check(younger.Key, metav1.ConditionTrue, v1alpha1.ReasonReady, "", "")
		check(twin.Key, metav1.ConditionFalse, v1alpha1.ReasonDuplicateName, "dupe", "Metric/ns/younger")
		if got := served(t, c, "dupe"); !slices.Equal(got, []string{"{cluster=local,v=20} 20"}) {
			t.Fatalf("after the owner went, served %v, want the younger metric's", got)
		}
		if v := pushed("dupe"); v != 20 {
			t.Fatalf("after the owner went, pushed %d, want the younger metric's 20", v)
		}

		// The owner takes another name: the twin takes over "dupe".
		renamed := younger
		renamed.Name, renamed.Generation = "ot_her", 1
		c.Publish(renamed, true)
		check(twin.Key, metav1.ConditionTrue, v1alpha1.ReasonReady, "", "")
		if got := served(t, c, "dupe"); !slices.Equal(got, []string{"{cluster=local,v=3} 3"}) {
			t.Fatalf("after the rename, served %v under dupe, want the twin's", got)
		}
		if got := served(t, c, "ot_her"); !slices.Equal(got, []string{"{cluster=local,v=20} 20"}) {
			t.Fatalf("after the rename, served %v under ot_her", got)
		}

		// Names are owned as Prometheus sees them: "ot_her" and "ot.her"
		// are one family.
		clash := metric("clash", "ot.her", t0.Add(-time.Hour), 5)
		c.Publish(clash, true)
		check(renamed.Key, metav1.ConditionFalse, v1alpha1.ReasonDuplicateName, "ot_her", "Metric/ns/clash")
		if got := served(t, c, "ot_her"); !slices.Equal(got, []string{"{cluster=local,v=5} 5"}) {
			t.Fatalf("served %v under ot_her, want the older clash", got)
		}
	})
}

// blockingSource is a Source whose Snapshot waits until release is
// closed, reporting each call on entered.
type blockingSource struct {
	entered chan struct{}
	release chan struct{}
}

func (s *blockingSource) Snapshot() []ClusterSeries {
	s.entered <- struct{}{}
	<-s.release
	return []ClusterSeries{{Cluster: "local", Series: []evaluation.Series{{Value: 1}}}}
}

func (s *blockingSource) Warning() string { return "" }

// TestSnapshotsDoNotBlockTheEventPath checks that neither a status check
// nor a scrape holds the coordinator's lock while it reads a metric's
// series, so a slow read never delays Changed, which every event calls.
func TestSnapshotsDoNotBlockTheEventPath(t *testing.T) {
	src := &blockingSource{entered: make(chan struct{}, 4), release: make(chan struct{})}
	c := newCoordinator(t, Options{Sinks: datasink.NewStore(), Exporter: &recorder{}, Prometheus: promexport.NewCollector(),
		StatusWriters: map[string]StatusWriter{"Metric": &statuses{}}})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = c.Start(ctx); close(done) }()
	defer func() { close(src.release); cancel(); <-done }()

	u := Update{Key: Key{Kind: "Metric", Namespace: "ns", Name: "slow"}, Name: "slow", Interval: time.Hour, Source: src}
	c.Publish(u, true)
	wait := func(what string) {
		t.Helper()
		select {
		case <-src.entered:
		case <-time.After(30 * time.Second):
			t.Fatalf("no %s read the series", what)
		}
	}
	wait("status check")
	go func() { _ = c.opts.Prometheus.WriteText(io.Discard, nil) }()
	wait("scrape")

	changed := make(chan struct{})
	go func() {
		for range 100 {
			c.Changed(u.Key)
		}
		close(changed)
	}()
	select {
	case <-changed:
	case <-time.After(30 * time.Second):
		t.Fatal("Changed waited for a status check or a scrape reading the series")
	}
}

// twiceLocal is a Source that gives the cluster "local" twice, with one
// series in both.
type twiceLocal struct{}

func (twiceLocal) Snapshot() []ClusterSeries {
	team := func(v string) []evaluation.Dimension { return []evaluation.Dimension{{Name: "team", Value: v}} }
	return []ClusterSeries{
		{Cluster: "local", Series: []evaluation.Series{{Value: 2}, {Dimensions: team("web"), Value: 1}}},
		{Cluster: "local", Series: []evaluation.Series{{Value: 3}}},
	}
}

func (twiceLocal) Warning() string { return "" }

// TestRowsWithOneLabelSetAreSummed checks that rows that end up with the
// same labels are summed in every export, never one of them dropped.
func TestRowsWithOneLabelSetAreSummed(t *testing.T) {
	c := newCoordinator(t, Options{Sinks: datasink.NewStore(), Exporter: &recorder{}, Prometheus: promexport.NewCollector()})
	u := Update{Key: Key{Kind: "Metric", Namespace: "ns", Name: "m"}, Name: "m", DimensionNames: []string{"team"}, Source: twiceLocal{}}
	c.Publish(u, true)
	if got, want := served(t, c, "m"), []string{"{cluster=local,team=web} 1", "{cluster=local} 5"}; !slices.Equal(got, want) {
		t.Errorf("/metrics serves %v, want %v", got, want)
	}
	m := otlpMetric(&u, time.Now())
	var got []string
	for _, p := range m.Points {
		var attrs []string
		for _, a := range p.Attributes {
			attrs = append(attrs, a.Key+"="+a.Value)
		}
		got = append(got, strings.Join(attrs, ",")+" "+strconv.FormatInt(p.Value, 10))
	}
	slices.Sort(got)
	if want := []string{"cluster=local 5", "cluster=local,team=web 1"}; !slices.Equal(got, want) {
		t.Errorf("OTLP points %v, want %v", got, want)
	}
}
