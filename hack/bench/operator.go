package main

import (
	"time"

	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// operatorProc is one running operator binary.
type operatorProc struct {
	p          *testenv.OperatorProcess
	started    time.Time
	metricsURL string
	logPath    string
}

// startOperator starts the operator binary against h.kubeconfig; args are
// added to its command line.
func (h *harness) startOperator(name string, args ...string) (*operatorProc, error) {
	p, err := testenv.StartOperator(h.cfg.operatorBin, h.kubeconfig, h.cfg.workDir, "operator-"+name,
		append([]string{
			"--operator-namespace", metricsNamespace,
			"--min-export-interval", h.cfg.minExportInterval.String(),
			"--status-update-interval", h.cfg.statusInterval.String(),
		}, args...)...,
	)
	if err != nil {
		return nil, err
	}
	return &operatorProc{p: p, started: p.Started, metricsURL: p.MetricsURL, logPath: p.LogPath}, nil
}

// exited reports whether the process has ended.
func (p *operatorProc) exited() bool { return p.p.Exited() }

// stop ends the operator: SIGTERM, then SIGKILL if it does not stop.
func (p *operatorProc) stop() {
	if err := p.p.Stop(); err != nil {
		logf("%v", err)
	}
}

// peakRSS is the process's VmHWM (peak resident set) in bytes.
func (p *operatorProc) peakRSS() (uint64, error) {
	_, peak, err := p.p.Memory()
	return uint64(peak), err
}
