package operator_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
		binaryPath = filepath.Join(dir, "metrics-operator")
		build := exec.Command("go", "build", "-o", binaryPath, "./cmd/metrics-operator")
		build.Dir = testenv.RepoRoot()
		if out, err := build.CombinedOutput(); err != nil {
			binaryErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// process is an operator binary running against the test control plane,
// with everything it logs in a file.
type process struct {
	cmd        *exec.Cmd
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
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "operator.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"--kubeconfig", kubeconfig,
		"--operator-namespace=" + namespace, "--metrics-bind-address=" + addr, "--metrics-secure=false",
		"--health-probe-bind-address=0", "--min-export-interval=200ms", "--status-update-interval=1s",
		"--zap-log-level=debug"}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, metricsURL: "http://" + addr + "/metrics", logPath: logPath}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = log.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
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
// in bytes, from /proc.
func (p *process) memory(t *testing.T) (rss, peak int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return rss, peak
}
