package operator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/sharding"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// shardMetrics is how many Metrics TestShardingOverThreeReplicas spreads:
// 45, or $SHARD_METRICS for a larger measurement.
func shardMetrics() int {
	if n, err := strconv.Atoi(os.Getenv("SHARD_METRICS")); err == nil && n > 0 {
		return n
	}
	return 45
}

// shardPolled and shardRefused are how many polling Metrics, and Metrics
// the operator refuses, TestShardingOverThreeReplicas has beside the
// event-driven ones.
const shardPolled, shardRefused = 6, 4

// shardArtifacts is where a measurement run keeps each replica's log and
// a CPU profile of a survivor taking over a killed replica's metrics:
// $SHARD_ARTIFACTS, or "" to keep nothing.
func shardArtifacts() string { return os.Getenv("SHARD_ARTIFACTS") }

// keepArtifact copies the file at from into dir as name when the test ends.
func keepArtifact(t *testing.T, dir, name, from string) {
	t.Cleanup(func() {
		if b, err := os.ReadFile(from); err == nil {
			_ = os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
	})
}

// profileCPU writes a CPU profile of seconds of the process serving pprof
// at addr to path, in the background.
func profileCPU(t *testing.T, addr, path string, seconds int) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds)
		if err := testenv.SaveProfile(context.Background(), url, path); err != nil {
			t.Logf("CPU profile: %v", err)
		}
	}()
	t.Cleanup(func() { <-done })
}

// shardLease is the test's --shard-lease-duration; renewals every second.
const shardLease = 6 * time.Second

// shardReplica is one operator process of a sharded deployment.
type shardReplica struct {
	*process
	id    string // its member name and OTLP service.instance.id
	pprof string // where it serves pprof, with $SHARD_ARTIFACTS
}

// TestShardingOverThreeReplicas runs three operator processes with
// --sharding over 45 event-driven Metrics pushing to one OTLP receiver,
// while a writer keeps changing their value (so every holder of a metric
// pushes it every few hundred milliseconds), beside a few polling Metrics
// and a few the operator refuses, which every replica holds without
// registering them for events (TestStandbyReleasesWhatItNeverPublished
// in internal/controllers has the interleaving they broke). It checks that each metric
// is served on exactly one replica's /metrics, the one rendezvous hashing
// names, and that each replica's watch listed once at the start (its
// start gate waited for its view to settle); that when one replica is
// killed (SIGKILL: its Lease stays) the others serve its metrics within
// the lease duration plus a margin; that
// a replica added takes its share; that a replica stopped cleanly hands
// over at once; and that no metric's pushes ever came from two replicas
// interleaved. It logs the handover times and each replica's LIST passes.
// $SHARD_METRICS sets the number of Metrics for a measurement at scale,
// $SHARD_ARTIFACTS keeps logs and a CPU profile (see shardArtifacts).
func TestShardingOverThreeReplicas(t *testing.T) { testSharding(t, false) }

// TestShardingWithWarmStandby is TestShardingOverThreeReplicas with
// --shard-warm-standby: besides its checks, the survivors of the killed
// replica publish every metric they take from it at once when its Lease
// expires (the metrics they kept ready), rather than register them then.
// It logs what the replicas' CPU and memory cost with the metrics they
// keep ready.
func TestShardingWithWarmStandby(t *testing.T) { testSharding(t, true) }

func testSharding(t *testing.T, warm bool) {
	testenv.Require(t, env)
	t.Logf("%d Metrics", shardMetrics())
	// Its own namespace and names per run, so that -count=N measures N
	// handovers.
	run := time.Now().UnixNano() % 1e6
	ns := fmt.Sprintf("sharding-%d", run)
	sink := otlpsink.Start(t)
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "anchor", Namespace: ns}})
	mustCreate(t, &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: sink.HTTPURL()}}})
	keys := map[string]string{} // family → coordinator key
	for i := range shardMetrics() {
		name := fmt.Sprintf("shard-%02d", i)
		family := fmt.Sprintf("shard_%d_%02d", run, i)
		keys[family] = "Metric/" + ns + "/" + name
		m := &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.MetricSpec{Name: family, Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
				Namespace: ns, EventDriven: ptr.To(true), Interval: metav1.Duration{Duration: 10 * time.Second}}}
		mustCreate(t, m)
		// The other tests' operators must not keep evaluating them.
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), m) })
	}
	// Beside them, Metrics that a replica holds without ever registering
	// them for events, as a cluster has: polling ones, served like the
	// others, and ones the operator refuses (a reserved name), which no
	// replica exports but whose owner reports the refusal.
	polled := map[string]bool{} // their coordinator keys
	for i := range shardPolled {
		name := fmt.Sprintf("polled-%d", i)
		family := fmt.Sprintf("shard_%d_polled_%d", run, i)
		keys[family] = "Metric/" + ns + "/" + name
		polled[keys[family]] = true
		mustCreate(t, &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.MetricSpec{Name: family, Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
				Namespace: ns, EventDriven: ptr.To(false), Interval: metav1.Duration{Duration: 10 * time.Second}}})
	}
	for i := range shardRefused {
		mustCreate(t, &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("refused-%d", i), Namespace: ns},
			Spec: v1alpha1.MetricSpec{Name: fmt.Sprintf("metrics_operator_shard_%d_%d", run, i),
				Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns, EventDriven: ptr.To(true),
				Interval: metav1.Duration{Duration: 10 * time.Second}}})
	}
	t.Cleanup(func() {
		_ = env.Client.DeleteAllOf(context.Background(), &v1alpha1.Metric{}, client.InNamespace(ns))
	})

	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	start := func() *shardReplica {
		args := []string{"--sharding", "--shard-lease-duration=" + shardLease.String(), "--shard-renew-interval=1s",
			"--zap-log-level=info", fmt.Sprintf("--shard-warm-standby=%t", warm)}
		var pprof string
		if shardArtifacts() != "" {
			if pprof, err = testenv.FreeAddr(); err != nil {
				t.Fatal(err)
			}
			// Every line, with its time to the nanosecond.
			args = append(args, "--pprof-bind-address="+pprof, "--zap-log-level=debug", "--zap-devel",
				"--zap-encoder=json", "--zap-time-encoding=rfc3339nano")
		}
		p := startProcess(t, ns, args...)
		// Without POD_NAME, the member name is host name and pid.
		r := &shardReplica{process: p, id: fmt.Sprintf("%s-%d", host, p.Pid()), pprof: pprof}
		if dir := shardArtifacts(); dir != "" {
			keepArtifact(t, dir, r.id+".log", p.logPath)
		}
		return r
	}
	replicas := []*shardReplica{start(), start(), start()}

	// served maps each family to the replicas serving it; an unreachable
	// replica serves nothing. The replicas are scraped at the same time,
	// so that with thousands of families a round is as short as one
	// scrape.
	served := func(rs []*shardReplica) map[string][]string {
		scraped := make([]map[string]*dto.MetricFamily, len(rs))
		var wg sync.WaitGroup
		for i, r := range rs {
			wg.Go(func() { scraped[i], _ = scrape.Families(r.metricsURL) })
		}
		wg.Wait()
		out := map[string][]string{}
		for i, fams := range scraped {
			for name, f := range fams {
				if _, ok := keys[name]; ok && len(f.GetMetric()) > 0 {
					out[name] = append(out[name], rs[i].id)
				}
			}
		}
		return out
	}
	// never twice: every scrape of the whole test is checked for a
	// family served by two replicas at once.
	var doubleServed []string
	check := func(rs []*shardReplica) error {
		got := served(rs)
		var ids []string
		for _, r := range rs {
			ids = append(ids, r.id)
		}
		for family, by := range got {
			if len(by) > 1 {
				doubleServed = append(doubleServed, fmt.Sprintf("%s on %v", family, by))
			}
		}
		for family, key := range keys {
			want := sharding.Owner(key, ids)
			if by := got[family]; len(by) != 1 || by[0] != want {
				return fmt.Errorf("%s served by %v, want %s (%d of %d families served)", family, by, want, len(got), len(keys))
			}
		}
		return nil
	}
	// handover waits until the members rs serve every metric as hashing
	// says and returns how long that took since from.
	handover := func(what string, from time.Time, rs []*shardReplica) time.Duration {
		t.Helper()
		var last error
		for time.Since(from) < 60*time.Second {
			round := time.Now()
			if last = check(rs); last == nil {
				d := time.Since(from)
				// The scrapes of the round began at its start: the metrics
				// were served by then or during the round.
				t.Logf("%s: every metric served by its owner %.2fs later (seen by a round of scrapes that began %.2fs after)",
					what, d.Seconds(), round.Sub(from).Seconds())
				return d
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: not handed over within 60s: %v", what, last)
		return 0
	}

	handover("three replicas started", replicas[0].Started, replicas)
	// Each replica's start gate waited for its view to settle, so its
	// watch listed once for the metrics of its share.
	if joins := logListPasses(t, "three replicas started", replicas); joins > 0 {
		t.Errorf("the replicas' watches listed %.0f more times for metrics that joined them after the start, want none", joins)
	}
	// The replicas share every metric object of the cluster, other tests'
	// too: together they own each once.
	ownedAddUp := func(what string, rs []*shardReplica) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, func() error {
			owned := 0
			for _, r := range rs {
				fams, err := scrape.Families(r.metricsURL)
				if err != nil {
					return err
				}
				if got, want := scrape.Strings(scrape.Samples(fams, "metrics_operator_shard_members")), []string{fmt.Sprintf("{} %d", len(rs))}; !slices.Equal(got, want) {
					return fmt.Errorf("%s: %s: metrics_operator_shard_members %v, want %v", what, r.id, got, want)
				}
				for _, s := range scrape.Samples(fams, "metrics_operator_owned_metrics") {
					owned += int(s.Value)
				}
			}
			if all := countMetricObjects(t); owned != all {
				return fmt.Errorf("%s: metrics_operator_owned_metrics of the replicas add up to %d, want the %d metric objects", what, owned, all)
			}
			return nil
		})
	}
	ownedAddUp("three replicas started", replicas)

	// While the replicas started one after the other, the first held
	// every metric for a moment and handed them on: a metric killed with
	// its replica below may legitimately go back to a replica it was on
	// then. From here on no metric can return to a replica it left, so
	// every return is two replicas pushing it at the same time.
	sink.Reset()
	// Every metric's value changes every 300 ms from now on, so each
	// replica holding it pushes it at once.
	ctx, stopWriter := context.WithCancel(t.Context())
	var writer sync.WaitGroup
	writer.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "churn", Namespace: ns}}
			if i%2 == 0 {
				_ = env.Client.Create(ctx, cm)
			} else {
				_ = env.Client.Delete(ctx, cm)
			}
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	})
	defer func() { stopWriter(); writer.Wait() }()
	cost := startCost(t, replicas)
	time.Sleep(3 * time.Second)
	cost.log(t, "3 s of changes before the kill")

	// A replica dies without releasing its Lease.
	var lostKeys int // the event-driven ones, which the survivors keep ready
	for _, key := range keys {
		if !polled[key] && sharding.Owner(key, []string{replicas[0].id, replicas[1].id, replicas[2].id}) == replicas[1].id {
			lostKeys++
		}
	}
	logMarks := []int{len(replicas[0].log(t)), len(replicas[2].log(t))}
	if dir := shardArtifacts(); dir != "" {
		profileCPU(t, replicas[0].pprof, filepath.Join(dir, replicas[0].id+"-takeover.pprof"), int((shardLease+10*time.Second)/time.Second))
	}
	killed := time.Now()
	replicas[1].Kill()
	t.Logf("killed %s at %s", replicas[1].id, killed.Format("15:04:05.000"))
	replicas = []*shardReplica{replicas[0], replicas[2]}
	lost := handover("replica killed", killed, replicas)
	promoted, anew := logTakeover(t, ns, killed, replicas, logMarks)
	if warm && (promoted < lostKeys || anew > 0) {
		t.Errorf("the survivors published %d metrics they kept ready and registered %d of this test anew when the Lease expired, want the killed replica's %d and none",
			promoted, anew, lostKeys)
	}
	logListPasses(t, "replica killed", replicas)
	ownedAddUp("replica killed", replicas)
	if limit := shardLease + 5*time.Second; lost > limit {
		t.Errorf("a killed replica's metrics were served again after %s, want within the lease duration (%s) and a margin", lost, shardLease)
	}
	time.Sleep(3 * time.Second)

	// A replica joins: the others drop what it takes before it serves.
	joinsBefore := logListPasses(t, "before a replica joins", replicas)
	joined := time.Now()
	replicas = append(replicas, start())
	handover("replica added", joined, replicas)
	// The others only give metrics up (with warm standby they keep ready
	// what the joiner takes from them, without registering it anew).
	if joins := logListPasses(t, "replica added", replicas[:len(replicas)-1]) - joinsBefore; joins > 0 {
		t.Errorf("the watches of the replicas already there listed %.0f more times for metrics that joined them when a replica joined, want none", joins)
	}
	logListPasses(t, "replica added", replicas[len(replicas)-1:])
	ownedAddUp("replica added", replicas)
	time.Sleep(3 * time.Second)

	// A replica stops cleanly: its Lease is released, the others take
	// over without waiting for it to expire.
	stopped := time.Now()
	if err := replicas[0].Stop(); err != nil {
		t.Fatal(err)
	}
	replicas = replicas[1:]
	if d := handover("replica stopped", stopped, replicas); d > shardLease {
		t.Errorf("a stopped replica's metrics were served again after %s, want less than the lease duration %s", d, shardLease)
	}
	ownedAddUp("replica stopped", replicas)
	time.Sleep(3 * time.Second)
	stopWriter()
	writer.Wait()

	if len(doubleServed) > 0 {
		t.Errorf("families served by two replicas in one round of scrapes: %v", doubleServed)
	}
	checkNoInterleavedPushes(t, sink.Received(), keys, []phase{
		{"replica killed", killed}, {"replica added", joined}, {"replica stopped", stopped}})
}

// logListPasses logs how many LIST passes each replica's watches made so
// far: the first list of each watch it ran, and the lists for metrics
// that joined a running watch. It returns the joins of them all.
func logListPasses(t *testing.T, what string, rs []*shardReplica) (joins float64) {
	t.Helper()
	for _, r := range rs {
		fams, err := scrape.Families(r.metricsURL)
		if err != nil {
			t.Logf("%s: %s: %v", what, r.id, err)
			continue
		}
		sum := func(name string) float64 {
			v := 0.0
			for _, s := range scrape.Samples(fams, name) {
				v += s.Value
			}
			return v
		}
		joins += sum("metrics_operator_join_lists_total")
		t.Logf("%s: %s: %.0f watches, %.0f joins of a running watch, %.0f metrics owned", what, r.id,
			sum("metrics_operator_informers_active"), sum("metrics_operator_join_lists_total"), sum("metrics_operator_owned_metrics"))
	}
	return joins
}

// countMetricObjects counts the objects of the four metric kinds.
func countMetricObjects(t *testing.T) int {
	t.Helper()
	n := 0
	for _, l := range []client.ObjectList{&v1alpha1.MetricList{}, &v1alpha1.ManagedMetricList{},
		&v1alpha1.FederatedMetricList{}, &v1alpha1.FederatedManagedMetricList{}} {
		if err := env.Client.List(t.Context(), l); err != nil {
			t.Fatal(err)
		}
		n += meta.LenList(l)
	}
	return n
}

// phase is a change of the replicas, at the time the test made it.
type phase struct {
	name string
	at   time.Time
}

// checkNoInterleavedPushes fails when, for some metric, the replicas whose
// pushes reached the receiver alternate (a, b, a): two replicas pushed it
// over overlapping intervals. A metric moves from one replica to another,
// never back, in TestShardingOverThreeReplicas's sequence of changes
// after the start.
//
// It logs, per phase, the gaps of the metrics that moved: from the old
// owner's last push to the new owner's first.
func checkNoInterleavedPushes(t *testing.T, batches []otlpsink.Batch, keys map[string]string, phases []phase) {
	t.Helper()
	sort.SliceStable(batches, func(i, j int) bool { return batches[i].Time.Before(batches[j].Time) })
	runs := map[string][]string{} // family → replicas in the order their pushes arrived, repeats folded
	timeline := map[string][]string{}
	last := map[string]time.Time{}
	gaps := map[string][]time.Duration{} // by phase: from the last push of one replica to the first of the next
	pushes := 0
	for _, b := range batches {
		for _, m := range b.MetricList() {
			if _, ok := keys[m.Name]; !ok {
				continue
			}
			pushes++
			id := m.Resource["service.instance.id"]
			timeline[m.Name] = append(timeline[m.Name], fmt.Sprintf("%s@%s", id, b.Time.Format("15:04:05.000")))
			if r := runs[m.Name]; len(r) == 0 || r[len(r)-1] != id {
				if len(r) > 0 {
					p := "before any change"
					for _, ph := range phases {
						if b.Time.After(ph.at) {
							p = ph.name
						}
					}
					gaps[p] = append(gaps[p], b.Time.Sub(last[m.Name]))
				}
				runs[m.Name] = append(r, id)
			}
			last[m.Name] = b.Time
		}
	}
	for family, r := range runs {
		for i, id := range r {
			if slices.Contains(r[:i], id) {
				t.Errorf("%s was pushed by %s, then by another replica, then by %s again: %s; pushes: %s",
					family, id, id, strings.Join(r, " → "), strings.Join(timeline[family], " "))
				break
			}
		}
	}
	t.Logf("%d pushes of %d metrics arrived", pushes, len(runs))
	for p, g := range gaps {
		slices.Sort(g)
		t.Logf("%s: %d metrics moved; from the old owner's last push to the new owner's first: median %.2fs, max %.2fs",
			p, len(g), g[len(g)/2].Seconds(), g[len(g)-1].Seconds())
	}
	if len(runs) != len(keys) {
		t.Errorf("pushes of %d of %d metrics arrived", len(runs), len(keys))
	}
}

// logTakeover logs, per survivor, from what it logged since marks (the
// lengths of their logs at the kill; its times are to the second unless
// $SHARD_ARTIFACTS has the replicas log nanoseconds): when it counted the killed replica
// gone and how late after its lease duration that was, when it published
// the metrics it kept ready (warm standby) and how many, and how many it
// registered anew and when the last was. It returns how many metrics the
// survivors published from standby, and how many of namespace ns they
// registered anew.
func logTakeover(t *testing.T, ns string, killed time.Time, rs []*shardReplica, marks []int) (promoted, anew int) {
	t.Helper()
	since := func(at time.Time) string {
		if at.IsZero() {
			return "-"
		}
		return fmt.Sprintf("%.2fs", at.Sub(killed).Seconds())
	}
	for i, r := range rs {
		var expiry, expiredAt, lastRegistered, lastByReconcile time.Time
		byReconcile := 0
		var late string
		registered := 0
		var ready []string
		for _, line := range strings.Split(string(r.log(t)[marks[i]:]), "\n") {
			// Read as a map: keys match exactly (a struct would take the
			// reconciler's "Metric" object for the "metric" key).
			var fields map[string]any
			if json.Unmarshal([]byte(line), &fields) != nil {
				continue
			}
			str := func(k string) string { v, _ := fields[k].(string); return v }
			num, _ := fields["metrics"].(float64)
			standby, _ := fields["standby"].(bool)
			l := struct {
				TS                               any
				Msg, Late, Expired, Took, Metric string
				Metrics                          int
				Standby                          bool
			}{fields["ts"], str("msg"), str("late"), str("expiredAt"), str("duration"), str("metric"), int(num), standby}
			at := logTime(l.TS)
			switch l.Msg {
			case "Shard member expired":
				if expiry.IsZero() {
					expiry, late = at, l.Late
					expiredAt, _ = time.Parse(time.RFC3339Nano, l.Expired)
				}
			case "Metrics kept ready are served":
				promoted += l.Metrics
				ready = append(ready, fmt.Sprintf("%d at %s in %s", l.Metrics, since(at), l.Took))
			case "Metric kept ready is served":
				// By its reconcile, which came to it first.
				promoted++
				byReconcile++
				lastByReconcile = at
			case "Metric registered for events":
				if !l.Standby {
					registered++
					lastRegistered = at
					if strings.HasPrefix(l.Metric, "Metric/"+ns+"/") {
						anew++
					}
				}
			}
		}
		// The floor of a takeover: the lease duration since the last
		// renewal this survivor saw, less the time that renewal came
		// before the kill.
		gone := "saw its Lease deleted by another survivor first"
		if !expiry.IsZero() {
			gone = fmt.Sprintf("its last renewal seen %.2fs before the kill; counted it gone at %s (%s after the lease duration from that renewal)",
				killed.Sub(expiredAt.Add(-shardLease)).Seconds(), since(expiry), late)
		}
		t.Logf("replica killed: %s: %s; published kept ready: %v, and %d by their reconciles, the last at %s; registered %d, the last at %s",
			r.id, gone, ready, byReconcile, since(lastByReconcile), registered, since(lastRegistered))
	}
	return promoted, anew
}

// logTime reads a log line's time: seconds since the epoch, or RFC 3339.
func logTime(ts any) time.Time {
	switch v := ts.(type) {
	case float64:
		return time.Unix(0, int64(v*1e9))
	case string:
		at, _ := time.Parse(time.RFC3339Nano, v)
		return at
	}
	return time.Time{}
}

// cost is the CPU time each replica had used when it was taken.
type cost struct {
	rs    []*shardReplica
	at    time.Time
	ticks []int64
}

// startCost begins measuring the replicas' CPU use.
func startCost(t *testing.T, rs []*shardReplica) *cost {
	t.Helper()
	c := &cost{rs: rs, at: time.Now()}
	for _, r := range rs {
		c.ticks = append(c.ticks, cpuTicks(t, r.Pid()))
	}
	return c
}

// log logs each replica's CPU use since startCost, as a share of a core,
// and its resident memory.
func (c *cost) log(t *testing.T, what string) {
	t.Helper()
	wall := time.Since(c.at).Seconds()
	for i, r := range c.rs {
		// Clock ticks are hundredths of a second on Linux.
		used := float64(cpuTicks(t, r.Pid())-c.ticks[i]) / 100
		rss, _ := r.memory(t)
		t.Logf("%s: %s: %.2f CPU-s (%.0f%% of a core), %.0f MiB resident", what, r.id, used, 100*used/wall, float64(rss)/(1<<20))
	}
}

// cpuTicks is the user and system CPU time of process pid in clock ticks.
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from the last ')'. utime and stime are fields 14 and 15.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return utime + stime
}
