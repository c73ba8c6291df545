package reliability

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// shutdownBudget is how long the operator may take to exit on SIGTERM
// while its API server is down. Nothing has to be flushed to the API
// server on the way out, so it is seconds, far from the manager's 30 s
// grace period.
const shutdownBudget = 5 * time.Second

// metricWatchBudget is how long after a restarted API server answers a
// change to a Metric made while it was down may take to show. The
// restarted server's watch cache starts empty, so the watch cannot resume
// and relists after client-go's first backoff step (0.8 to 1.6 s); on the
// shared 2-core machine that and the API server's warm-up took 5.5 and
// 6.1 s.
const metricWatchBudget = 10 * time.Second

// TestShutdownDuringOutage checks the operator's own watches (those of
// controller-runtime's cache: Metrics, DataSinks) through API server
// outages, and its shutdown during one.
//
// A Metric deleted while the operator's kube-apiserver is down for 20 s
// leaves /metrics within metricWatchBudget of the API server answering
// again. Then the
// API server is restarted several times in quick succession, so that the
// watches back off and relist, and stopped: the operator gets SIGTERM and
// exits within shutdownBudget.
//
// Without informers.NewCacheInformer both failed: the watch of Metrics
// resumed only after client-go's backoff, which grows to 30 s, jittered
// up to 60 s (the deleted family left 43 s after the API server answered;
// the soak saw a deleted metric pushed 30 to 36 s after), and in 2 of 4
// runs the shutdown hung for the
// manager's whole 30 s grace period in "Stopping and waiting for
// caches": a Reflector that failed a streaming list (watch-list) sleeps
// that backoff without watching its stop channel (client-go
// tools/cache/reflector.go, watchList).
func TestShutdownDuringOutage(t *testing.T) {
	env := startEnv(t)
	dir := t.TempDir()
	api, kubeconfig := startAPIServer(t, env, dir, nil)
	const ns = "shutdown"
	f := newFleet(t, env.Client, ns, 50)
	pprofAddr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	op := startOperator(t, kubeconfig, dir, "operator", ns, "--pprof-bind-address", pprofAddr)
	f.waitRight(op.MetricsURL, op.Started, time.Minute)

	if err := api.Stop(); err != nil {
		t.Fatal(err)
	}
	total := &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "total", Namespace: ns}}
	if err := env.Client.Delete(t.Context(), total); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Second)
	if err := api.Start(); err != nil {
		t.Fatal(err)
	}
	answering := time.Now()
	var gone time.Duration
	testenv.Eventually(t, 2*time.Minute, func() error {
		fams, err := scrape.Families(op.MetricsURL)
		if err != nil {
			return err
		}
		if scrape.Samples(fams, totalFamily) != nil {
			return fmt.Errorf("%s still on /metrics", totalFamily)
		}
		gone = time.Since(answering)
		return nil
	})
	t.Logf("a Metric deleted during a 20 s outage left /metrics %s after the API server answered", gone.Round(time.Millisecond))
	if gone > metricWatchBudget {
		t.Errorf("the deleted Metric's family left /metrics %s after the API server answered, want within %s", gone, metricWatchBudget)
	}

	for range 5 {
		if err := api.Stop(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		if err := api.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	if err := api.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)

	stopping := time.Now()
	if err := syscall.Kill(op.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for !op.Exited() && time.Since(stopping) < shutdownBudget {
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(stopping)
	if !op.Exited() {
		// The HTTP servers stop last: pprof still answers while a
		// runnable hangs.
		t.Errorf("the operator did not exit within %s of SIGTERM during an API server outage; its goroutines:\n%s",
			shutdownBudget, reflectorStacks(t, "http://"+pprofAddr+"/debug/pprof/goroutine?debug=2"))
		return
	}
	t.Logf("the operator exited %s after SIGTERM, its API server down", took.Round(time.Millisecond))
}

// reflectorStacks returns the goroutine stacks of a pprof dump that run
// in client-go's cache package.
func reflectorStacks(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, g := range strings.Split(string(b), "\n\n") {
		if strings.Contains(g, "client-go/tools/cache") || strings.Contains(g, "controller-runtime/pkg/manager") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
