package reliability

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/SAP/metrics-operator/internal/testing/testenv"
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
	api, kubeconfig := startAPIServer(t, env, dir, nil)
	const ns = "outage"
	f := newFleet(t, env.Client, ns, 400)
	op := startOperator(t, kubeconfig, dir, "operator", ns)
	f.waitRight(op.MetricsURL, op.Started, time.Minute)
	// LIST pages and lists streamed as a watch's initial events.
	reads := func() int {
		t.Helper()
		n, err := api.CountRequests(operatorUser, "list", ns)
		if err != nil {
			t.Fatal(err)
		}
		m, err := api.CountRequests(operatorUser, "watchlist", ns)
		if err != nil {
			t.Fatal(err)
		}
		return n + m
	}
	listsBefore := reads()

	if err := api.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	for time.Since(stopped) < 30*time.Second {
		f.churn(10)
		time.Sleep(2 * time.Second)
	}
	starting := time.Now()
	if err := api.Start(); err != nil {
		t.Fatal(err)
	}
	answering := time.Now()
	recovered := f.waitRight(op.MetricsURL, answering, 30*time.Second)
	lists := reads() - listsBefore
	t.Logf("API server down %s (then %s to start); values right %s after it answered /readyz; %d LIST requests for the watched ConfigMaps; operator relists %g",
		starting.Sub(stopped).Round(time.Millisecond), answering.Sub(starting).Round(time.Millisecond),
		recovered.Round(time.Millisecond), lists, counter(t, op.MetricsURL, "metrics_operator_watch_relists_total"))
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
// one relist of one page, the values are right within 5 s each time, and
// the wait between the expired watch and its relist (read from the API
// server's audit log) stays at the first backoff step: it does not grow
// from one expiry to the next. A first round without compaction checks
// that a watch that can resume does so without a LIST.
func TestWatchExpiryAfterCompaction(t *testing.T) {
	env := startEnv(t)
	dir := t.TempDir()
	api, kubeconfig := startAPIServer(t, env, dir, map[string]string{"watch-cache": "false"})
	const ns = "expiry"
	f := newFleet(t, env.Client, ns, 400)
	// At debug level the informer logs the relist backoff it chose.
	op := startOperator(t, kubeconfig, dir, "operator", ns, "--zap-log-level=debug")
	f.waitRight(op.MetricsURL, op.Started, time.Minute)

	for round := range 5 {
		compact := round > 0
		// A watch that ran this long counts as healthy (informers'
		// healthyWatch): its expiry starts the backoff over.
		time.Sleep(11 * time.Second)
		relists := counter(t, op.MetricsURL, "metrics_operator_watch_relists_total")
		if err := api.Stop(); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
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
		relists = counter(t, op.MetricsURL, "metrics_operator_watch_relists_total") - relists
		lists, wait := relistAfter(t, api, ns, stopped)
		t.Logf("round %d (compacted: %t): values right %s after the API server answered; %d LIST requests, %g relists, relist %s after the expired watch",
			round, compact, recovered.Round(time.Millisecond), lists, relists, wait.Round(time.Millisecond))
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
		// The first step of the relist backoff is 0.5 to 0.75 s; the
		// third would be 2 to 3 s. The operator's own log says which step
		// it chose; the wall-clock wait adds the API server's and the
		// operator's latency, which on a busy machine is itself seconds,
		// so it only has to stay far from the old 30 s gap.
		if compact {
			if b := lastRelistBackoff(t, op.LogPath); b > 750*time.Millisecond {
				t.Errorf("round %d: the relist waited a backoff of %s, want the first step (0.5 to 0.75s)", round, b)
			}
		}
		if wait > 10*time.Second {
			t.Errorf("round %d: the relist came %s after the expired watch, want well under the 30s cap", round, wait)
		}
	}
}

// relistAfter reads the audit log for the operator's ConfigMap requests
// since: how many LISTs (pages or streamed lists), and how long after the
// WATCH before it the first one came (0 without LIST).
func relistAfter(t *testing.T, api *testenv.APIServer, ns string, since time.Time) (lists int, wait time.Duration) {
	t.Helper()
	reqs, err := api.Requests(operatorUser, ns)
	if err != nil {
		t.Fatal(err)
	}
	var lastWatch time.Time
	for _, r := range reqs {
		if r.Received.Before(since) {
			continue
		}
		switch r.Verb {
		case "watch":
			if lists == 0 {
				lastWatch = r.Received
			}
		case "list", "watchlist":
			if lists == 0 && !lastWatch.IsZero() {
				wait = r.Received.Sub(lastWatch)
			}
			lists++
		}
	}
	return lists, wait
}

// lastRelistBackoff returns the backoff of the operator's latest
// "relisting" log line (its informers log it at debug level).
func lastRelistBackoff(t *testing.T, logPath string) time.Duration {
	t.Helper()
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var found *time.Duration
	for _, line := range bytes.Split(data, []byte("\n")) {
		var rec struct {
			Msg     string   `json:"msg"`
			Backoff *float64 `json:"backoff"`
		}
		if json.Unmarshal(line, &rec) != nil || rec.Backoff == nil || !strings.Contains(rec.Msg, "relisting") {
			continue
		}
		d := time.Duration(*rec.Backoff * float64(time.Second))
		found = &d
	}
	if found == nil {
		t.Fatal("the operator logged no relist backoff")
	}
	return *found
}
