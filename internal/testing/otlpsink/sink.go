package otlpsink

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// metricsPath is where the receiver accepts OTLP/HTTP metrics (its default).
const metricsPath = "/v1/metrics"

// shutdownTimeout bounds stopping the receiver; a graceful gRPC stop waits
// for open streams, which a misbehaving test client could hold forever.
const shutdownTimeout = 10 * time.Second

// Option configures a Sink.
type Option func(*options)

type options struct {
	certPEM, keyPEM []byte
	clientCAPEM     []byte
	onBatch         func(Batch)
}

// WithOnBatch calls f with every batch received, after it was recorded.
// The demo prints what arrives this way.
func WithOnBatch(f func(Batch)) Option {
	return func(o *options) { o.onBatch = f }
}

// WithTLS makes both servers speak TLS with the given PEM certificate and
// key; HTTPURL then uses https.
func WithTLS(certPEM, keyPEM []byte) Option {
	return func(o *options) { o.certPEM, o.keyPEM = certPEM, keyPEM }
}

// WithClientCA makes both servers require a client certificate signed by
// the given PEM CA (mTLS). It needs WithTLS.
func WithClientCA(caPEM []byte) Option {
	return func(o *options) { o.clientCAPEM = caPEM }
}

// Batch is one received export request.
type Batch struct {
	// Metrics is the request's payload. Treat it as read-only: it is shared
	// with every caller of Received.
	Metrics pmetric.Metrics
	// Headers are the request headers (HTTP) or metadata (gRPC), keys in
	// lower case so that both protocols read the same.
	Headers map[string][]string
	// Time is when the receiver handed the batch over.
	Time time.Time
}

// Header returns the first value of the named header, or "".
func (b Batch) Header(name string) string {
	if v := b.Headers[strings.ToLower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Sink is a running OTLP receiver that records what it receives.
type Sink struct {
	t        testing.TB
	opts     options
	caFile   string
	httpAddr string
	grpcAddr string

	mu      sync.Mutex
	batches []Batch
	failErr error
	changed chan struct{} // closed and replaced whenever batches change
	rcv     receiver.Metrics
}

// Start starts a receiver serving OTLP/gRPC and OTLP/HTTP on loopback ports
// and stops it when the test ends. It fails the test if it cannot start.
func Start(t testing.TB, opts ...Option) *Sink {
	t.Helper()
	s := &Sink{t: t, changed: make(chan struct{})}
	for _, o := range opts {
		o(&s.opts)
	}
	if s.opts.clientCAPEM != nil {
		if s.opts.certPEM == nil {
			t.Fatal("otlpsink: WithClientCA needs WithTLS")
		}
		// configtls only reads the client CA from a file.
		s.caFile = filepath.Join(t.TempDir(), "client-ca.pem")
		if err := os.WriteFile(s.caFile, s.opts.clientCAPEM, 0o600); err != nil {
			t.Fatalf("otlpsink: write client CA: %v", err)
		}
	}
	if err := s.start("127.0.0.1:0", "127.0.0.1:0"); err != nil {
		t.Fatalf("otlpsink: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Listen starts a receiver outside a test, on the given addresses
// ("127.0.0.1:4318"); Stop ends it. It takes no client CA (WithClientCA).
func Listen(grpcAddr, httpAddr string, opts ...Option) (*Sink, error) {
	s := &Sink{changed: make(chan struct{})}
	for _, o := range opts {
		o(&s.opts)
	}
	if s.opts.clientCAPEM != nil {
		return nil, fmt.Errorf("otlpsink: Listen does not support WithClientCA")
	}
	if err := s.start(grpcAddr, httpAddr); err != nil {
		return nil, err
	}
	return s, nil
}

// HTTPURL is the full OTLP/HTTP metrics URL, for example
// "http://127.0.0.1:4318/v1/metrics" (https with WithTLS).
func (s *Sink) HTTPURL() string {
	scheme := "http"
	if s.opts.certPEM != nil {
		scheme = "https"
	}
	return scheme + "://" + s.httpAddr + metricsPath
}

// HTTPAddr is the OTLP/HTTP server's host:port.
func (s *Sink) HTTPAddr() string { return s.httpAddr }

// GRPCAddr is the OTLP/gRPC server's host:port.
func (s *Sink) GRPCAddr() string { return s.grpcAddr }

// Received returns every batch received since the start or the last Reset,
// oldest first.
func (s *Sink) Received() []Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Batch(nil), s.batches...)
}

// Count is the number of batches received since the start or the last
// Reset.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batches)
}

// Reset forgets every received batch.
func (s *Sink) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = nil
	s.notifyLocked()
}

// FailWith makes the receiver reject every following request with err
// (wrap it with consumererror.NewPermanent for a non-retryable rejection);
// nil accepts requests again. Rejected requests are not recorded.
func (s *Sink) FailWith(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failErr = err
}

// WaitFor blocks until cond returns true or timeout passes, and reports
// whether cond was met. cond runs once immediately and again after every
// received batch; it may call the Sink's other methods.
func (s *Sink) WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		if cond() {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return cond()
		}
	}
}

// Stop shuts the receiver down; exports then fail with connection errors.
// It is idempotent and must be called from the test's goroutine.
func (s *Sink) Stop() {
	s.mu.Lock()
	rcv := s.rcv
	s.rcv = nil
	s.mu.Unlock()
	if rcv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := rcv.Shutdown(ctx); err != nil && s.t != nil {
		s.t.Errorf("otlpsink: shutdown: %v", err)
	}
}

// Restart starts a stopped receiver again on the same addresses. It must be
// called from the test's goroutine.
func (s *Sink) Restart() {
	s.t.Helper()
	if err := s.Reopen(); err != nil {
		s.t.Fatalf("otlpsink: %v", err)
	}
}

// Reopen is Restart for a Sink from Listen, which has no test to fail:
// it returns the error instead.
func (s *Sink) Reopen() error {
	s.mu.Lock()
	running := s.rcv != nil
	s.mu.Unlock()
	if running {
		return nil
	}
	if err := s.start(s.grpcAddr, s.httpAddr); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}

func (s *Sink) start(grpcEndpoint, httpEndpoint string) error {
	factory := otlpreceiver.NewFactory()
	cfg := factory.CreateDefaultConfig().(*otlpreceiver.Config)

	grpcCfg := cfg.Protocols.GRPC.GetOrInsertDefault()
	grpcCfg.NetAddr.Endpoint = grpcEndpoint
	grpcCfg.IncludeMetadata = true
	httpCfg := cfg.Protocols.HTTP.GetOrInsertDefault()
	httpCfg.ServerConfig.NetAddr.Endpoint = httpEndpoint
	httpCfg.ServerConfig.IncludeMetadata = true
	if s.opts.certPEM != nil {
		tlsCfg := configtls.ServerConfig{
			Config: configtls.Config{
				CertPem: configopaque.String(s.opts.certPEM),
				KeyPem:  configopaque.String(s.opts.keyPEM),
			},
			ClientCAFile: s.caFile,
		}
		grpcCfg.TLS = configoptional.Some(tlsCfg)
		httpCfg.ServerConfig.TLS = configoptional.Some(tlsCfg)
	}

	// The receiver does not expose the addresses it bound, only logs them;
	// reading them from the log lets the kernel pick free ports without the
	// race of probing for one first.
	core, logs := observer.New(zapcore.InfoLevel)
	set := receivertest.NewNopSettings(factory.Type())
	set.Logger = zap.New(core)

	next, err := consumer.NewMetrics(s.consume)
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	rcv, err := factory.CreateMetrics(context.Background(), set, cfg, next)
	if err != nil {
		return fmt.Errorf("create receiver: %w", err)
	}
	if err := rcv.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		return fmt.Errorf("start receiver: %w", err)
	}
	s.mu.Lock()
	s.rcv = rcv
	s.mu.Unlock()

	if s.grpcAddr, err = loggedEndpoint(logs, "Starting GRPC server"); err != nil {
		s.Stop()
		return err
	}
	if s.httpAddr, err = loggedEndpoint(logs, "Starting HTTP server"); err != nil {
		s.Stop()
		return err
	}
	return nil
}

func loggedEndpoint(logs *observer.ObservedLogs, msg string) (string, error) {
	for _, e := range logs.FilterMessage(msg).All() {
		if ep, ok := e.ContextMap()["endpoint"].(string); ok && ep != "" {
			return ep, nil
		}
	}
	return "", fmt.Errorf("receiver did not log %q with an endpoint; has otlpreceiver changed its log messages?", msg)
}

func (s *Sink) consume(ctx context.Context, md pmetric.Metrics) error {
	headers := map[string][]string{}
	meta := client.FromContext(ctx).Metadata
	for k := range meta.Keys() {
		key := strings.ToLower(k)
		headers[key] = append(headers[key], meta.Get(k)...)
	}
	// The receiver owns md only for the duration of this call.
	owned := pmetric.NewMetrics()
	md.CopyTo(owned)

	s.mu.Lock()
	if s.failErr != nil {
		defer s.mu.Unlock()
		return s.failErr
	}
	b := Batch{Metrics: owned, Headers: headers, Time: time.Now()}
	s.batches = append(s.batches, b)
	s.notifyLocked()
	s.mu.Unlock()
	if s.opts.onBatch != nil {
		s.opts.onBatch(b)
	}
	return nil
}

func (s *Sink) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}
