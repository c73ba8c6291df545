package operator_test

import (
	"os"
	"sync"
	"testing"

	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// operatorBinary builds cmd/metrics-operator once per test run.
func operatorBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the operator binary")
	}
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "metrics-operator-bin")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath, binaryErr = testenv.BuildOperator(dir)
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// process is an operator binary running against the test control plane,
// with everything it logs in a file.
type process struct {
	*testenv.OperatorProcess
	metricsURL string
	logPath    string
}

// startProcess runs the operator binary with plain-HTTP /metrics, full
// verbosity and args, and kills it when the test ends.
func startProcess(t *testing.T, namespace string, args ...string) *process {
	t.Helper()
	bin := operatorBinary(t)
	dir := t.TempDir()
	kubeconfig, err := env.WriteAdminKubeconfig(dir, "operator-"+namespace)
	if err != nil {
		t.Fatal(err)
	}
	op, err := testenv.StartOperator(bin, kubeconfig, dir, "operator", append([]string{
		"--operator-namespace=" + namespace, "--min-export-interval=200ms", "--status-update-interval=1s",
		"--zap-log-level=debug"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	p := &process{OperatorProcess: op, metricsURL: op.MetricsURL, logPath: op.LogPath}
	t.Cleanup(func() {
		op.Kill()
		if t.Failed() {
			out, _ := os.ReadFile(op.LogPath)
			if len(out) > 20000 {
				out = out[len(out)-20000:]
			}
			t.Logf("operator log (tail):\n%s", out)
		}
	})
	return p
}

// log returns what the operator logged so far.
func (p *process) log(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// memory returns the process's resident set size now and at its peak,
// in bytes.
func (p *process) memory(t *testing.T) (rss, peak int64) {
	t.Helper()
	rss, peak, err := p.Memory()
	if err != nil {
		t.Fatal(err)
	}
	return rss, peak
}
