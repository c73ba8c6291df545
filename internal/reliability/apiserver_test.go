package reliability

import (
	"testing"
	"time"
)

// operatorUser is the user the operator authenticates as at the second
// API server; its audit log counts the operator's LISTs by it.
const operatorUser = "metrics-operator"

// TestAPIServerOutage stops the kube-apiserver the operator talks to for
// 30 s while ConfigMaps are created, deleted and relabelled through
// another one on the same etcd, then starts it again: every value is
// right within 5 s of it answering, with at most two LISTs (pages
// included) of the watched ConfigMaps.
func TestAPIServerOutage(t *testing.T) {
	env := startEnv(t)
	dir := t.TempDir()
	api, err := env.StartAPIServer(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := api.WriteKubeconfig(env, dir, operatorUser)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "outage"
	f := newFleet(t, env.Client, ns, 400)
	op := startOperator(t, kubeconfig, dir, "operator", ns)
	f.waitRight(op.MetricsURL, op.Started, time.Minute)
	listsBefore := mustCount(t, api, "list", ns)

	if err := api.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	for time.Since(stopped) < 30*time.Second {
		f.churn(10)
		time.Sleep(2 * time.Second)
	}
	if err := api.Start(); err != nil {
		t.Fatal(err)
	}
	answering := time.Now()
	recovered := f.waitRight(op.MetricsURL, answering, 30*time.Second)
	lists := mustCount(t, api, "list", ns) - listsBefore
	t.Logf("API server down %s; values right %s after it answered again; %d LIST requests for the watched ConfigMaps; operator relists %g",
		answering.Sub(stopped).Round(time.Millisecond), recovered.Round(time.Millisecond), lists,
		counter(t, op.MetricsURL, "metrics_operator_watch_relists_total"))
	if recovered > 5*time.Second {
		t.Errorf("values right %s after the API server answered again, want within 5s", recovered)
	}
	if lists > 2 {
		t.Errorf("%d LISTs of the watched ConfigMaps after the outage, want at most 2 (one relist, one retry)", lists)
	}
	if op.Exited() {
		t.Fatal("the operator exited during the outage")
	}
}

// TestWatchExpiryAfterCompaction expires the operator's watch four times
// in a row: each time the API server it talks to (serving watches from
// etcd, without a watch cache) is stopped, ConfigMaps change, etcd is
// compacted up to its current revision and the API server is started
// again, so the watch cannot resume and gets 410 Gone. Each expiry costs
// one relist of one page and the values are right within 5 s each time:
// the relist backoff does not grow from one expiry to the next. A first
// round without compaction checks that a watch that can resume does so
// without a LIST.
func TestWatchExpiryAfterCompaction(t *testing.T) {
	env := startEnv(t)
	dir := t.TempDir()
	api, err := env.StartAPIServer(dir, map[string]string{"watch-cache": "false"})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := api.WriteKubeconfig(env, dir, operatorUser)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "expiry"
	f := newFleet(t, env.Client, ns, 400)
	op := startOperator(t, kubeconfig, dir, "operator", ns)
	f.waitRight(op.MetricsURL, op.Started, time.Minute)

	for round := range 5 {
		compact := round > 0
		// A watch that ran this long counts as healthy (informers'
		// healthyWatch): its expiry starts the backoff over.
		time.Sleep(11 * time.Second)
		lists := mustCount(t, api, "list", ns)
		relists := counter(t, op.MetricsURL, "metrics_operator_watch_relists_total")
		if err := api.Stop(); err != nil {
			t.Fatal(err)
		}
		f.churn(10)
		if compact {
			if _, err := env.CompactEtcd(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		if err := api.Start(); err != nil {
			t.Fatal(err)
		}
		answering := time.Now()
		recovered := f.waitRight(op.MetricsURL, answering, time.Minute)
		lists = mustCount(t, api, "list", ns) - lists
		relists = counter(t, op.MetricsURL, "metrics_operator_watch_relists_total") - relists
		t.Logf("round %d (compacted: %t): values right %s after the API server answered; %d LIST requests, %g relists",
			round, compact, recovered.Round(time.Millisecond), lists, relists)
		if recovered > 5*time.Second {
			t.Errorf("round %d: values right after %s, want within 5s", round, recovered)
		}
		want := 0
		if compact {
			want = 1
		}
		if lists != want || relists != float64(want) {
			t.Errorf("round %d: %d LIST requests and %g relists, want %d of each", round, lists, relists, want)
		}
	}
}

func mustCount(t *testing.T, api interface {
	CountRequests(user, verb, ns string) (int, error)
}, verb, ns string) int {
	t.Helper()
	n, err := api.CountRequests(operatorUser, verb, ns)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
