package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// BuildOperator builds the operator binary (./cmd/metrics-operator) into
// dir and returns its path.
func BuildOperator(dir string) (string, error) {
	bin := filepath.Join(dir, "metrics-operator")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/metrics-operator")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/metrics-operator: %w\n%s", err, out)
	}
	return bin, nil
}

// OperatorProcess is the operator binary running as a child process.
type OperatorProcess struct {
	// MetricsURL is its plain-HTTP /metrics.
	MetricsURL string
	// LogPath holds its output.
	LogPath string
	// Started is when the process was started.
	Started time.Time

	cmd  *exec.Cmd
	done chan struct{}
}

// StartOperator runs bin against the cluster of kubeconfig, serving
// /metrics over plain HTTP on a free port, with args added to the
// command line. Its output goes to dir/<name>.log.
func StartOperator(bin, kubeconfig, dir, name string, args ...string) (*OperatorProcess, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{
		"--kubeconfig", kubeconfig,
		"--metrics-bind-address", addr,
		"--metrics-secure=false",
		"--health-probe-bind-address", "0",
	}, args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the test binary dies, the kernel stops the operator.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &OperatorProcess{MetricsURL: "http://" + addr + "/metrics", LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, errors.Join(err, logFile.Close())
	}
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *OperatorProcess) Pid() int { return p.cmd.Process.Pid }

// Memory returns the process's resident set size now (VmRSS) and at its
// peak (VmHWM), in bytes, from /proc.
func (p *OperatorProcess) Memory() (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(string(f[1]), 10, 64)
		switch string(f[0]) {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	if peak == 0 {
		return 0, 0, errors.New("no VmHWM in /proc/<pid>/status")
	}
	return rss, peak, nil
}

// Exited reports whether the process has ended.
func (p *OperatorProcess) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill ends the process with SIGKILL, as the kernel's OOM killer or a
// node failure would: nothing of it runs afterwards, no cleanup.
func (p *OperatorProcess) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Stop ends the process with SIGTERM, then SIGKILL after 45 s: longer
// than the manager's own 30 s grace period, after which the process ends
// by itself even when a runnable hangs. (One did, in controller-runtime's
// cache after API server restarts, until informers.NewCacheInformer;
// internal/reliability TestShutdownDuringOutage checks the exit is
// prompt.)
func (p *OperatorProcess) Stop() error {
	if p.Exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(45 * time.Second):
		p.Kill()
		return errors.New("the operator did not stop within 45s of SIGTERM; killed")
	}
}
