package otlp

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/testing/certs"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
)

var observed = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// payload covers several series with dimensions, a metric with a single
// series, duplicate attribute keys and a metric without series (which must
// not be sent).
var payload = []Metric{
	{
		Name:        "pods_by_phase",
		Description: "Pods per namespace and phase",
		Points: []Point{
			{Attributes: []Attr{{"namespace", "default"}, {"phase", "Running"}, {"kind", "Pod"}}, Value: 3, Time: observed},
			{Attributes: []Attr{{"namespace", "kube-system"}, {"phase", "Pending"}, {"kind", "Pod"}}, Value: 1, Time: observed},
		},
	},
	{
		Name:        "oldest_secret_created",
		Description: "Creation time of the oldest Secret",
		Points: []Point{
			{Attributes: []Attr{{"cluster", "old"}, {"cluster", "local"}}, Value: 1700000000, Time: observed},
		},
	},
	{Name: "no_series", Description: "has no series left"},
}

func TestExportPayload(t *testing.T) {
	for _, protocol := range protocols {
		t.Run(string(protocol), func(t *testing.T) {
			sink := otlpsink.Start(t)
			pool := newPool(t, Options{})

			if err := pool.Export(t.Context(), testSinkKey, target(sink, protocol, "a"), payload); err != nil {
				t.Fatalf("export: %v", err)
			}

			batches := sink.Received()
			if len(batches) != 1 {
				t.Fatalf("got %d requests, want 1", len(batches))
			}
			if got := batches[0].Header(authHeader); got != authValue {
				t.Errorf("Authorization header = %q, want %q", got, authValue)
			}
			compareGolden(t, "payload.json", toGolden(batches[0].MetricList()))
		})
	}
}

func TestExportWithoutSeriesSendsNothing(t *testing.T) {
	sink := otlpsink.Start(t)
	pool := newPool(t, Options{})

	err := pool.Export(t.Context(), testSinkKey, target(sink, datasink.ProtocolHTTP, "a"), []Metric{{Name: "empty"}})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	if n := sink.Count(); n != 0 {
		t.Errorf("sink received %d requests, want none", n)
	}
}

func TestExportDefaultsPointTimeToNow(t *testing.T) {
	sink := otlpsink.Start(t)
	pool := newPool(t, Options{})

	before := time.Now()
	if err := pool.Export(t.Context(), testSinkKey, target(sink, datasink.ProtocolHTTP, "a"), onePoint(1)); err != nil {
		t.Fatalf("export: %v", err)
	}
	p := sink.LatestPoints("probe")
	if len(p) != 1 || p[0].Time.Before(before) || p[0].Time.After(time.Now()) {
		t.Errorf("point time = %+v, want the time of export", p)
	}
}

func TestExportTLS(t *testing.T) {
	set, err := certs.Generate()
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := set.Client.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	tlsOnly := &tls.Config{RootCAs: set.CA.CertPool(), MinVersion: tls.VersionTLS12}
	withClientCert := &tls.Config{RootCAs: set.CA.CertPool(), Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12}

	for _, protocol := range protocols {
		t.Run(string(protocol), func(t *testing.T) {
			t.Run("server TLS", func(t *testing.T) {
				sink := otlpsink.Start(t, otlpsink.WithTLS(set.Server.CertPEM, set.Server.KeyPEM))
				pool := newPool(t, Options{})
				if err := pool.Export(t.Context(), testSinkKey, tlsTarget(sink, protocol, tlsOnly), onePoint(1)); err != nil {
					t.Fatalf("export: %v", err)
				}
				waitForValue(t, sink, 1)
			})
			t.Run("untrusted server", func(t *testing.T) {
				sink := otlpsink.Start(t, otlpsink.WithTLS(set.Server.CertPEM, set.Server.KeyPEM))
				pool := newPool(t, Options{Timeout: 2 * time.Second})
				other, err := certs.NewCA("other CA")
				if err != nil {
					t.Fatal(err)
				}
				cfg := &tls.Config{RootCAs: other.CertPool(), MinVersion: tls.VersionTLS12}
				if err := pool.Export(t.Context(), testSinkKey, tlsTarget(sink, protocol, cfg), onePoint(1)); err == nil {
					t.Fatal("export to a server signed by an untrusted CA succeeded")
				}
			})
			t.Run("mTLS", func(t *testing.T) {
				sink := otlpsink.Start(t,
					otlpsink.WithTLS(set.Server.CertPEM, set.Server.KeyPEM),
					otlpsink.WithClientCA(set.CA.CertPEM))
				pool := newPool(t, Options{Timeout: 2 * time.Second})

				err := pool.Export(t.Context(), "no-cert", tlsTarget(sink, protocol, tlsOnly), onePoint(1))
				if err == nil {
					t.Fatal("export without a client certificate succeeded; the sink must require one")
				}
				if err := pool.Export(t.Context(), testSinkKey, tlsTarget(sink, protocol, withClientCert), onePoint(2)); err != nil {
					t.Fatalf("export with client certificate: %v", err)
				}
				waitForValue(t, sink, 2)
			})
		})
	}
}

func TestExportRebuildsOnlyOnFingerprintChange(t *testing.T) {
	for _, protocol := range protocols {
		t.Run(string(protocol), func(t *testing.T) {
			first, second := otlpsink.Start(t), otlpsink.Start(t)
			pool := newPool(t, Options{})
			ctx := t.Context()

			if err := pool.Export(ctx, testSinkKey, target(first, protocol, "v1"), onePoint(1)); err != nil {
				t.Fatal(err)
			}
			// Same fingerprint, different address: the exporter is reused,
			// so the data still goes to the first sink.
			if err := pool.Export(ctx, testSinkKey, target(second, protocol, "v1"), onePoint(2)); err != nil {
				t.Fatal(err)
			}
			if first.Count() != 2 || second.Count() != 0 {
				t.Fatalf("with an unchanged fingerprint: first got %d, second %d requests; want 2 and 0", first.Count(), second.Count())
			}
			if err := pool.Export(ctx, testSinkKey, target(second, protocol, "v2"), onePoint(3)); err != nil {
				t.Fatal(err)
			}
			if first.Count() != 2 || second.Count() != 1 {
				t.Fatalf("after the fingerprint changed: first got %d, second %d requests; want 2 and 1", first.Count(), second.Count())
			}
			waitForValue(t, second, 3)
		})
	}
}

func TestExportToStoppedSinkFailsFastAndRecovers(t *testing.T) {
	for _, protocol := range protocols {
		t.Run(string(protocol), func(t *testing.T) {
			sink := otlpsink.Start(t)
			pool := newPool(t, Options{})
			tg := target(sink, protocol, "a")
			ctx := t.Context()

			if err := pool.Export(ctx, testSinkKey, tg, onePoint(1)); err != nil {
				t.Fatal(err)
			}
			sink.Stop()

			start := time.Now()
			err := pool.Export(ctx, testSinkKey, tg, onePoint(2))
			took := time.Since(start)
			if err == nil {
				t.Fatal("export to a stopped sink succeeded")
			}
			// Far below DefaultTimeout: a refused connection must not be
			// retried or waited out.
			if took > 2*time.Second {
				t.Errorf("export to a stopped sink took %v", took)
			}
			if strings.Contains(err.Error(), apiKey) {
				t.Errorf("error leaks the API key: %v", err)
			}
			if !strings.Contains(err.Error(), testSinkKey) || !strings.Contains(err.Error(), tg.Endpoint) {
				t.Errorf("error %q lacks the sink key or endpoint", err)
			}

			sink.Restart()
			// gRPC redials with backoff, so the first exports after the
			// restart may still fail.
			deadline := time.Now().Add(longDeadline)
			for {
				err = pool.Export(ctx, testSinkKey, tg, onePoint(3))
				if err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("export after restart: %v", err)
			}
			waitForValue(t, sink, 3)
		})
	}
}

func TestExportIsBoundedByTimeout(t *testing.T) {
	addr, _ := hangingListener(t)

	for _, protocol := range protocols {
		t.Run(string(protocol), func(t *testing.T) {
			pool := newPool(t, Options{Timeout: 300 * time.Millisecond})
			tg := &datasink.Target{Protocol: protocol, Endpoint: addr, URLPath: metricsPath, Insecure: true, Fingerprint: "a"}

			start := time.Now()
			err := pool.Export(t.Context(), testSinkKey, tg, onePoint(1))
			if err == nil {
				t.Fatal("export to an unresponsive sink succeeded")
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("export took %v with a 300ms timeout", took)
			}
		})
	}
}

func TestExportErrorRedactsEchoedHeader(t *testing.T) {
	// A backend that quotes the request's credentials in its error body.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "invalid token: "+r.Header.Get(authHeader), http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	pool := newPool(t, Options{})
	tg := &datasink.Target{
		Protocol: datasink.ProtocolHTTP, Endpoint: srv.Listener.Addr().String(), URLPath: metricsPath, Insecure: true,
		Headers: map[string]string{authHeader: authValue}, Fingerprint: "a",
	}

	err := pool.Export(t.Context(), testSinkKey, tg, onePoint(1))
	if err == nil {
		t.Fatal("export to a rejecting backend succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, apiKey) {
		t.Errorf("error leaks the API key: %s", msg)
	}
	if !strings.Contains(msg, "401") || !strings.Contains(msg, redacted) {
		t.Errorf("error %q should keep the status and mark the redaction", msg)
	}
}

// hangingListener accepts connections and never answers. It reports the
// first accepted connection, which tells a test that an export is in flight.
func hangingListener(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan struct{})
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		var once sync.Once
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			once.Do(func() { close(first) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String(), first
}

func TestExportLocksPerSink(t *testing.T) {
	addr, accepted := hangingListener(t)
	sink := otlpsink.Start(t)
	pool := newPool(t, Options{})
	hung := &datasink.Target{Protocol: datasink.ProtocolHTTP, Endpoint: addr, URLPath: metricsPath, Insecure: true, Fingerprint: "a"}

	hungCtx, cancelHung := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = pool.Export(hungCtx, "ns/hung", hung, onePoint(1)) })
	t.Cleanup(func() {
		cancelHung()
		wg.Wait()
	})
	select {
	case <-accepted:
	case <-time.After(longDeadline):
		t.Fatal("the export to the hanging sink never connected")
	}

	t.Run("other sinks proceed", func(t *testing.T) {
		start := time.Now()
		if err := pool.Export(t.Context(), testSinkKey, target(sink, datasink.ProtocolHTTP, "a"), onePoint(7)); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("export to a healthy sink took %v while another sink hung", took)
		}
	})
	t.Run("same sink waits within its context", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := pool.Export(ctx, "ns/hung", hung, onePoint(2))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want a deadline error while the sink's previous export runs", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("waiting for the sink's lock took %v with a 200ms deadline", took)
		}
	})
}

func TestRemoveAndShutdown(t *testing.T) {
	sink := otlpsink.Start(t)
	pool := NewPool(Options{})
	ctx := t.Context()
	tg := target(sink, datasink.ProtocolGRPC, "a")

	if err := pool.Export(ctx, testSinkKey, tg, onePoint(1)); err != nil {
		t.Fatal(err)
	}
	if err := pool.Remove(ctx, testSinkKey); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := pool.Remove(ctx, "ns/unknown"); err != nil {
		t.Fatalf("remove of an unknown key: %v", err)
	}
	// A removed sink is recreated on the next export.
	if err := pool.Export(ctx, testSinkKey, tg, onePoint(2)); err != nil {
		t.Fatalf("export after remove: %v", err)
	}
	waitForValue(t, sink, 2)

	if err := pool.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := pool.Export(ctx, testSinkKey, tg, onePoint(3)); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("export after shutdown: got %v, want ErrPoolClosed", err)
	}
}

func TestExportRejectsInvalidInput(t *testing.T) {
	pool := newPool(t, Options{})
	for name, tc := range map[string]struct {
		target  *datasink.Target
		metrics []Metric
	}{
		"nil target":       {nil, onePoint(1)},
		"unknown protocol": {&datasink.Target{Protocol: "ftp", Endpoint: "x:1"}, onePoint(1)},
		"no endpoint":      {&datasink.Target{Protocol: datasink.ProtocolHTTP}, onePoint(1)},
		"unnamed metric":   {&datasink.Target{Protocol: datasink.ProtocolHTTP, Endpoint: "x:1"}, []Metric{{Points: []Point{{Value: 1}}}}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := pool.Export(t.Context(), testSinkKey, tc.target, tc.metrics); err == nil {
				t.Fatal("export succeeded")
			}
		})
	}
}

func TestShutdownClosesConnectionsToLiveSinks(t *testing.T) {
	sink := otlpsink.Start(t)
	// The sink keeps running, so only the Pool can close the connections;
	// any goroutine they leave behind (client or server side) fails here.
	running := goleak.IgnoreCurrent()
	pool := NewPool(Options{})
	for _, protocol := range protocols {
		if err := pool.Export(t.Context(), string(protocol), target(sink, protocol, "a"), onePoint(1)); err != nil {
			t.Fatalf("export over %s: %v", protocol, err)
		}
	}
	if err := pool.Shutdown(t.Context()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	goleak.VerifyNone(t, running)
}

func TestExportDoesNotRetryRejectedRequests(t *testing.T) {
	for _, protocol := range protocols {
		t.Run(string(protocol), func(t *testing.T) {
			sink := otlpsink.Start(t)
			pool := newPool(t, Options{})
			// A retryable rejection (HTTP 503, gRPC Unavailable): the SDK
			// would retry it for up to a minute if its retry were on.
			sink.FailWith(errors.New("backend overloaded"))

			start := time.Now()
			if err := pool.Export(t.Context(), testSinkKey, target(sink, protocol, "a"), onePoint(1)); err == nil {
				t.Fatal("export to a rejecting sink succeeded")
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("rejected export took %v; it must not be retried", took)
			}

			sink.FailWith(nil)
			if err := pool.Export(t.Context(), testSinkKey, target(sink, protocol, "a"), onePoint(2)); err != nil {
				t.Fatalf("export after the sink recovered: %v", err)
			}
			waitForValue(t, sink, 2)
		})
	}
}

func TestRemoveClosesConnectionsToLiveSinks(t *testing.T) {
	sink := otlpsink.Start(t)
	// As in TestShutdownClosesConnectionsToLiveSinks, but for one sink at
	// a time, as when its DataSink is deleted while the operator runs on.
	running := goleak.IgnoreCurrent()
	pool := newPool(t, Options{})
	for _, protocol := range protocols {
		if err := pool.Export(t.Context(), string(protocol), target(sink, protocol, "a"), onePoint(1)); err != nil {
			t.Fatalf("export over %s: %v", protocol, err)
		}
		if err := pool.Remove(t.Context(), string(protocol)); err != nil {
			t.Fatalf("remove %s: %v", protocol, err)
		}
	}
	goleak.VerifyNone(t, running)
}
