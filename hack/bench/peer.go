package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// modePeer is the mode column of a --start-peer run.
const modePeer = "kube-state-metrics"

// peerFamily is the one family the peer is asked for: a series per
// ConfigMap, so its count says how much of the namespace it has synced.
const peerFamily = "kube_configmap_info"

// runPeerStart starts the --start-peer binary (kube-state-metrics, built
// outside this repository) on the same control plane, limited to the
// ConfigMaps of the objects' namespace and to one family, and measures
// its start the way runScenario measures the operator's: process start →
// a scrape shows one series per ConfigMap, the LIST requests until then,
// its CPU and its peak RSS. The peer runs just before the operator of the
// same round, so both see the same load.
func (h *harness) runPeerStart(ctx context.Context) *result {
	r := &result{mode: modePeer, operator: filepath.Base(h.cfg.startPeer), registered: -1, startLists: -1}
	logf("peer %s, start over the objects' ConfigMaps", r.operator)
	want, err := h.configMapCount(ctx)
	if err != nil {
		r.errorf("counting ConfigMaps: %v", err)
		return r
	}
	addr, err := testenv.FreeAddr()
	if err != nil {
		r.errorf("%v", err)
		return r
	}
	telemetry, err := testenv.FreeAddr()
	if err != nil {
		r.errorf("%v", err)
		return r
	}
	host, port, _ := strings.Cut(addr, ":")
	_, tport, _ := strings.Cut(telemetry, ":")
	logFile, err := os.Create(filepath.Join(h.cfg.workDir, "peer.log"))
	if err != nil {
		r.errorf("%v", err)
		return r
	}
	defer logFile.Close()
	apiBase, err := h.apiMetrics.snapshot(ctx)
	if err != nil {
		r.errorf("API server metrics: %v", err)
	}
	cmd := exec.Command(h.cfg.startPeer, "--kubeconfig", h.kubeconfig, "--resources", "configmaps",
		"--namespaces", objectsNamespace, "--metric-allowlist", peerFamily,
		"--host", host, "--port", port, "--telemetry-host", host, "--telemetry-port", tport)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		r.errorf("starting %s: %v", h.cfg.startPeer, err)
		return r
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()

	url := "http://" + addr + "/metrics"
	deadline := started.Add(h.cfg.readyTimeout)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if n, err := countSeries(ctx, url, peerFamily); err == nil && n >= want {
			r.ready, r.readyOK = time.Since(started), true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !r.readyOK {
		r.ready = time.Since(started)
	}
	logf("  %d series of %s after %s", want, peerFamily, fmtReady(r.ready, r.readyOK))
	if apiReady, err := h.apiMetrics.snapshot(ctx); err == nil && apiBase != nil {
		r.startLists = apiReady.requests["LIST configmaps"] - apiBase.requests["LIST configmaps"]
		r.startStreams = apiReady.requests["WATCHLIST configmaps"] - apiBase.requests["WATCHLIST configmaps"]
	}
	r.load = loadAverage()
	r.cpu, r.peakRSS = procUsage(cmd.Process.Pid)
	return r
}

// configMapCount is the number of ConfigMaps in the objects' namespace,
// from one page of one item (the API server counts the rest).
func (h *harness) configMapCount(ctx context.Context) (int, error) {
	l := &metav1.PartialObjectMetadataList{}
	l.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMapList"})
	if err := h.c.List(ctx, l, client.InNamespace(objectsNamespace), client.Limit(1)); err != nil {
		return 0, err
	}
	n := len(l.Items)
	if l.RemainingItemCount != nil {
		n += int(*l.RemainingItemCount)
	}
	return n, nil
}

// countSeries scrapes url and counts the samples of family, reading the
// text line by line (a parser would cost more than the peer's work).
func countSeries(ctx context.Context, url, family string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	prefix := []byte(family + "{")
	n := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if bytes.HasPrefix(sc.Bytes(), prefix) {
			n++
		}
	}
	return n, sc.Err()
}

// procUsage is a live process's CPU seconds (user + system) and peak RSS
// (VmHWM) from /proc; zero what it cannot read.
func procUsage(pid int) (cpu float64, peak uint64) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command's closing parenthesis; utime and
		// stime are the 14th and 15th fields of the whole line.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 12 {
				u, _ := strconv.ParseFloat(f[11], 64)
				s, _ := strconv.ParseFloat(f[12], 64)
				cpu = (u + s) / 100 // USER_HZ is 100 on Linux
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				peak = kb << 10
			}
		}
	}
	return cpu, peak
}
