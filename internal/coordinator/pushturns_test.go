package coordinator

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/types"

	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/export/otlp"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
)

// hangingServer accepts connections, reads the request line of each and
// never answers; it records the most connections open at once and the
// paths requested.
type hangingServer struct {
	ln      net.Listener
	mu      sync.Mutex
	open    int
	maxOpen int
	paths   map[string]bool
	wg      sync.WaitGroup
}

func startHangingServer(t *testing.T) *hangingServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &hangingServer{ln: ln, paths: map[string]bool{}}
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.hold(conn) })
		}
	})
	t.Cleanup(func() { _ = ln.Close(); s.wg.Wait() })
	return s
}

// hold keeps conn open until the client closes it.
func (s *hangingServer) hold(conn net.Conn) {
	defer func() { _ = conn.Close() }()
	s.mu.Lock()
	s.open++
	s.maxOpen = max(s.maxOpen, s.open)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.open--
		s.mu.Unlock()
	}()
	r := bufio.NewReader(conn)
	if req, err := http.ReadRequest(r); err == nil {
		s.mu.Lock()
		s.paths[req.URL.Path] = true
		s.mu.Unlock()
	}
	// Hold the connection until the client gives up on it.
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	_, _ = r.WriteTo(discard{})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func (s *hangingServer) stats() (maxOpen, paths int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxOpen, len(s.paths)
}

// TestNamespacePushesAtMostN has one namespace's 20 DataSinks point at a
// server that accepts connections and never answers, each with a metric
// due: the server sees at most DefaultMaxPushesPerNamespace connections
// open at once, every sink still gets its push, and a neighbour
// namespace's DataSink receives its metric promptly; the waits count in
// the tenant's metrics_operator_export_turns_waited_total. Before, every sink
// pushed at once, holding 20 connections.
func TestNamespacePushesAtMostN(t *testing.T) {
	const sinks = 20
	hang := startHangingServer(t)
	receiver := otlpsink.Start(t)
	store := datasink.NewStore()
	const timeout = 500 * time.Millisecond
	pool := otlp.NewPool(otlp.Options{Timeout: timeout})
	t.Cleanup(func() { _ = pool.Shutdown(context.Background()) })
	// A failed push retries after a minute: every attempt the server sees
	// is a sink's first.
	c := newCoordinator(t, Options{MinExportInterval: 100 * time.Millisecond, Sinks: store, Exporter: pool,
		Prometheus: promexport.NewCollector(), ExportTimeout: timeout, ExportBackoff: Backoff{Base: time.Minute}})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = c.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	publish := func(ns, name string, target *datasink.Target) {
		nn := types.NamespacedName{Namespace: ns, Name: name}
		store.Set(nn, target, nil)
		u := update(&valueSource{}, time.Hour)
		u.Key, u.Name = Key{Kind: "Metric", Namespace: ns, Name: name}, ns+"_"+name
		u.Sink = SinkRef{NamespacedName: nn, Explicit: true}
		c.Publish(u, true)
	}
	for i := range sinks {
		publish("tenant", fmt.Sprint("s", i), &datasink.Target{Protocol: datasink.ProtocolHTTP,
			Endpoint: hang.ln.Addr().String(), URLPath: fmt.Sprintf("/s%d", i), Insecure: true, Fingerprint: "x"})
	}
	waitedBefore := waited(t, "tenant")
	start := time.Now()
	publish("neighbour", "sink", &datasink.Target{Protocol: datasink.ProtocolHTTP, Endpoint: receiver.HTTPAddr(),
		URLPath: "/v1/metrics", Insecure: true, Fingerprint: "x"})
	if !receiver.WaitFor(5*time.Second, func() bool { return len(receiver.LatestPoints("neighbour_sink")) == 1 }) {
		t.Errorf("the neighbour's metric did not arrive within 5s")
	}
	t.Logf("the neighbour's metric arrived after %s", time.Since(start))

	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, paths := hang.stats(); paths == sinks || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	maxOpen, paths := hang.stats()
	t.Logf("%d of %d sinks pushed in %s, at most %d connections open at once", paths, sinks, time.Since(start), maxOpen)
	if paths != sinks {
		t.Errorf("%d of %d sinks were pushed, want all: a sink over the bound must wait its turn, not lose it", paths, sinks)
	}
	if waited(t, "tenant") == waitedBefore {
		t.Errorf("metrics_operator_export_turns_waited_total{namespace=tenant} did not grow")
	}
	if n := waited(t, "neighbour"); n != 0 {
		t.Errorf("metrics_operator_export_turns_waited_total{namespace=neighbour} = %v, want 0: its sink never waited", n)
	}
	if maxOpen > DefaultMaxPushesPerNamespace {
		t.Errorf("%d connections open at once from one namespace, want at most %d", maxOpen, DefaultMaxPushesPerNamespace)
	}
}

// waited reads metrics_operator_export_turns_waited_total of namespace.
func waited(t *testing.T, namespace string) float64 {
	t.Helper()
	var m dto.Metric
	if err := turnsWaited.WithLabelValues(namespace).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
