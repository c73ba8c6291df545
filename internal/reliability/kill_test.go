package reliability

import (
	"testing"
	"time"
)

// syncBudget is what a restarted operator may take to show right values
// for 10,000 ConfigMaps. docs/benchmarks.md measured 621 ms from process
// start for one event-driven metric on 10,000 ConfigMaps (1.08 s for 100
// metrics) on this machine; the budget leaves room for the noise of a
// shared 2-core machine, and the test logs what it measured.
const syncBudget = 5 * time.Second

// TestOperatorKill9 kills the operator binary with SIGKILL, changes
// ConfigMaps while it is gone, and starts it again: its values are right
// within syncBudget of the new process starting, as from a cold start.
func TestOperatorKill9(t *testing.T) {
	env := startEnv(t)
	dir := t.TempDir()
	kubeconfig, err := env.WriteAdminKubeconfig(dir, "metrics-operator")
	if err != nil {
		t.Fatal(err)
	}
	const ns = "kill"
	f := newFleet(t, env.Client, ns, 10000)
	first := startOperator(t, kubeconfig, dir, "operator-1", ns)
	cold := f.waitRight(first.MetricsURL, first.Started, time.Minute)

	first.Kill()
	f.churn(100)
	second := startOperator(t, kubeconfig, dir, "operator-2", ns)
	restarted := f.waitRight(second.MetricsURL, second.Started, time.Minute)
	t.Logf("10,000 ConfigMaps: values right %s after a cold start, %s after a restart following kill -9",
		cold.Round(time.Millisecond), restarted.Round(time.Millisecond))
	if restarted > syncBudget {
		t.Errorf("values right %s after the restart, want within %s", restarted, syncBudget)
	}
}
