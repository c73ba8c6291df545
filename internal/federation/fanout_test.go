package federation

import (
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

// clusterUpValue returns cluster_up of cluster, -1 when it has none.
func clusterUpValue(cluster string) float64 {
	ch := make(chan prometheus.Metric, 64)
	clusterUp.Collect(ch)
	close(ch)
	for pm := range ch {
		m := &dto.Metric{}
		if pm.Write(m) == nil && m.GetLabel()[0].GetValue() == cluster {
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func exportedNames(f *FanOut[string]) []string {
	var out []string
	for _, m := range f.Exported() {
		out = append(out, m.Cluster.Name)
	}
	return out
}

// TestFanOutFollowsClusters: Sync starts a part per new cluster, stops
// the parts of clusters gone or renamed, and keeps the others.
func TestFanOutFollowsClusters(t *testing.T) {
	f := NewFanOut[string](time.Minute, nil)
	var started, stopped []string
	start := func(c Cluster) string { started = append(started, c.Key); return "part-" + c.Name }
	stop := func(c Cluster, p string) { stopped = append(stopped, p) }

	if !f.Sync([]Cluster{{Key: "a", Name: "blue"}, {Key: "b", Name: "green"}}, start, stop) {
		t.Error("first Sync reports no change")
	}
	if f.Sync([]Cluster{{Key: "b", Name: "green"}, {Key: "a", Name: "blue"}}, start, stop) {
		t.Error("Sync of the same clusters reports a change")
	}
	if p, _ := f.Part("a"); p != "part-blue" {
		t.Errorf("part of a: %q", p)
	}
	f.Sync([]Cluster{{Key: "a", Name: "azure"}, {Key: "c", Name: "red"}}, start, stop)
	slices.Sort(started)
	slices.Sort(stopped)
	if !slices.Equal(started, []string{"a", "a", "b", "c"}) || !slices.Equal(stopped, []string{"part-blue", "part-green"}) {
		t.Errorf("started %v, stopped %v", started, stopped)
	}
	if got := f.Counts(); got != (Counts{Pending: 2}) {
		t.Errorf("counts %+v, want 2 pending", got)
	}
	f.Close(stop)
	if len(stopped) != 4 || len(f.Members()) != 0 {
		t.Errorf("Close left %d members, stopped %v", len(f.Members()), stopped)
	}
	if f.Sync([]Cluster{{Key: "d"}}, start, stop) || f.Synced("a") {
		t.Error("a closed FanOut took a cluster")
	}
}

// TestFanOutGracePeriod: an active cluster that becomes unreachable stays
// exported for the grace period, then is withdrawn and expired is
// called; it is exported again as soon as it is synced. Other failures
// withdraw at once, and a cluster never synced exports nothing.
func TestFanOutGracePeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var expired atomic.Int32
		f := NewFanOut[string](time.Minute, func() { expired.Add(1) })
		f.Sync([]Cluster{{Key: "a", Name: "blue"}, {Key: "b", Name: "green"}, {Key: "c", Name: "red"}},
			func(c Cluster) string { return c.Name }, func(Cluster, string) {})
		if got := exportedNames(f); len(got) != 0 {
			t.Errorf("exported %v before any sync", got)
		}
		f.Synced("a")
		f.Synced("b")
		if got := f.Counts(); got != (Counts{Active: 2, Pending: 1}) {
			t.Errorf("counts %+v", got)
		}
		down := reason.New(v1alpha1.ReasonClusterUnreachable, "the API server of cluster blue cannot be reached")
		if !f.Fail("a", down) {
			t.Error("Fail reports no change")
		}
		f.Fail("c", down) // never synced: nothing to keep
		if v := clusterUpValue("blue"); v != 0 {
			t.Errorf("cluster_up{blue} %v while unreachable, want 0", v)
		}
		time.Sleep(30 * time.Second)
		if f.Fail("a", down) {
			t.Error("the same failure again reports a change")
		}
		if got := exportedNames(f); !slices.Equal(got, []string{"blue", "green"}) {
			t.Errorf("exported %v within the grace period, want blue and green", got)
		}
		if got := f.Counts(); got != (Counts{Active: 1, Failed: 2}) {
			t.Errorf("counts %+v", got)
		}
		err := f.Problem()
		if reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable ||
			!strings.Contains(err.Error(), "2 of 3 clusters cannot be read: blue (ClusterUnreachable), red (ClusterUnreachable);") {
			t.Errorf("problem %v", err)
		}
		t.Logf("problem: %v", err)
		// The grace period counts from the first failure, not the last.
		time.Sleep(31 * time.Second)
		synctest.Wait()
		if got := exportedNames(f); !slices.Equal(got, []string{"green"}) {
			t.Errorf("exported %v after the grace period, want green", got)
		}
		if expired.Load() != 1 {
			t.Errorf("expired called %d times, want 1", expired.Load())
		}
		if !f.Synced("a") || f.Problem() == nil {
			t.Error("recovery of blue not recorded, or red's failure forgotten")
		}
		if got := exportedNames(f); !slices.Equal(got, []string{"blue", "green"}) {
			t.Errorf("exported %v after recovery", got)
		}
		if v := clusterUpValue("blue"); v != 1 {
			t.Errorf("cluster_up{blue} %v after recovery, want 1", v)
		}
		f.Fail("b", reason.New(v1alpha1.ReasonForbidden, "the remote cluster refuses"))
		if got := exportedNames(f); !slices.Equal(got, []string{"blue"}) {
			t.Errorf("exported %v after green was forbidden, want blue only", got)
		}
		if reason.Of(f.Problem(), "") != v1alpha1.ReasonForbidden {
			t.Errorf("problem %v, want green's Forbidden first (by name)", f.Problem())
		}
		// A recovered cluster's timer is stopped: expired is not called.
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if expired.Load() != 1 {
			t.Errorf("expired called %d times, want 1", expired.Load())
		}
		f.Close(func(Cluster, string) {})
		if v := clusterUpValue("blue"); v != -1 {
			t.Errorf("cluster_up{blue} %v after the last FanOut closed, want none", v)
		}
	})
}
