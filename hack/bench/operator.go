package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// operatorProc is one running operator binary.
type operatorProc struct {
	cmd        *exec.Cmd
	started    time.Time
	metricsURL string
	logPath    string
	done       chan struct{}
}

func (h *harness) startOperator(name string) (*operatorProc, error) {
	addr, err := testenv.FreeAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(h.cfg.workDir, "operator-"+name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(h.cfg.operatorBin,
		"--kubeconfig", h.kubeconfig,
		"--metrics-bind-address", addr,
		"--metrics-secure=false",
		"--health-probe-bind-address", "0",
		"--operator-namespace", metricsNamespace,
		"--min-export-interval", h.cfg.minExportInterval.String(),
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the benchmark dies without cleaning up, the kernel stops the operator.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &operatorProc{cmd: cmd, metricsURL: "http://" + addr + "/metrics", logPath: logPath, done: make(chan struct{})}
	p.started = time.Now()
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

// exited reports whether the process has ended.
func (p *operatorProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the operator: SIGTERM, then SIGKILL after 15 s.
func (p *operatorProc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		logf("operator did not stop within 15s; killing it")
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// peakRSS is the process's VmHWM (peak resident set) in bytes.
func (p *operatorProc) peakRSS() (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/<pid>/status")
}
