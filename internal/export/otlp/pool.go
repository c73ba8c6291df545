package otlp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/SAP/metrics-operator/internal/datasink"
)

// DefaultTimeout bounds one export when Options.Timeout is unset.
const DefaultTimeout = 10 * time.Second

// ErrPoolClosed is returned by Export after Shutdown.
var ErrPoolClosed = errors.New("exporter pool is shut down")

// Options configure a Pool.
type Options struct {
	// Timeout bounds one export, including connecting, the TLS handshake
	// and rebuilding the exporter. Zero means DefaultTimeout.
	Timeout time.Duration
	// Resource describes the operator in every export. Nil means
	// service.name "metrics-operator".
	Resource *resource.Resource
}

// Pool holds one OTLP exporter per DataSink, keyed by the caller (for
// example "namespace/name"). It is safe for concurrent use.
type Pool struct {
	timeout  time.Duration
	resource *resource.Resource

	mu      sync.Mutex
	closed  bool
	entries map[string]*entry
}

// entry is the exporter of one sink. Its lock is a channel so that waiting
// for it honours the caller's context.
type entry struct {
	lock chan struct{}
	// removed is set, under Pool.mu, once the entry has left the map;
	// whoever holds lock then shuts the exporter down.
	removed bool
	exp     *exporter // guarded by lock
}

// NewPool returns an empty Pool.
func NewPool(opts Options) *Pool {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Resource == nil {
		opts.Resource = defaultResource()
	}
	return &Pool{timeout: opts.Timeout, resource: opts.Resource, entries: map[string]*entry{}}
}

// Export pushes metrics to the sink identified by key, as configured by
// target. The sink's exporter is created on first use and rebuilt when
// target.Fingerprint differs from the one it was built with. Metrics
// without points are left out; if none remain, nothing is sent.
//
// Exports to the same key run one at a time; the wait for a running export
// counts against ctx and Options.Timeout.
func (p *Pool) Export(ctx context.Context, key string, target *datasink.Target, metrics []Metric) error {
	if target == nil {
		return fmt.Errorf("export to DataSink %s: no target", key)
	}
	for _, m := range metrics {
		if m.Name == "" {
			return fmt.Errorf("export to DataSink %s: metric without a name", key)
		}
	}
	rm := resourceMetrics(p.resource, metrics, time.Now())
	if rm == nil {
		return nil
	}

	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	e, err := p.acquire(ctx, key)
	if err != nil {
		return fmt.Errorf("export to DataSink %s: %w", key, err)
	}
	defer p.release(e)

	if e.exp == nil || e.exp.fingerprint != target.Fingerprint {
		if e.exp != nil {
			// The old exporter is done either way; a failure to close it
			// says nothing about the new configuration.
			_ = e.exp.shutdown(ctx)
			e.exp = nil
		}
		exp, err := newExporter(ctx, target, p.timeout)
		if err != nil {
			return excerpt(redact(fmt.Errorf("create %s exporter for DataSink %s (%s): %w",
				target.Protocol, key, target.Endpoint, err), target.Headers))
		}
		e.exp = exp
	}

	if err := e.exp.sdk.Export(ctx, rm); err != nil {
		return excerpt(redact(fmt.Errorf("export %d metrics to DataSink %s (%s %s): %w",
			len(rm.ScopeMetrics[0].Metrics), key, target.Protocol, target.Endpoint, err), target.Headers))
	}
	return nil
}

// Remove shuts down and forgets the exporter of key, for example when its
// DataSink is deleted. If an export to key is running and ctx ends first,
// the exporter is shut down when that export finishes.
func (p *Pool) Remove(ctx context.Context, key string) error {
	p.mu.Lock()
	e := p.entries[key]
	if e != nil {
		delete(p.entries, key)
		e.removed = true
	}
	p.mu.Unlock()
	if e == nil {
		return nil
	}
	if err := p.drain(ctx, e); err != nil {
		return fmt.Errorf("remove exporter for DataSink %s: %w", key, err)
	}
	return nil
}

// Shutdown shuts every exporter down; Export fails with ErrPoolClosed
// afterwards.
func (p *Pool) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	entries := p.entries
	p.entries = map[string]*entry{}
	for _, e := range entries {
		e.removed = true
	}
	p.mu.Unlock()

	var errs []error
	for key, e := range entries {
		if err := p.drain(ctx, e); err != nil {
			errs = append(errs, fmt.Errorf("shut down exporter for DataSink %s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

// acquire returns the locked entry of key, creating it if needed.
func (p *Pool) acquire(ctx context.Context, key string) (*entry, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrPoolClosed
		}
		e := p.entries[key]
		if e == nil {
			e = &entry{lock: make(chan struct{}, 1)}
			p.entries[key] = e
		}
		p.mu.Unlock()

		select {
		case e.lock <- struct{}{}:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		p.mu.Lock()
		removed := e.removed
		p.mu.Unlock()
		if !removed {
			return e, nil
		}
		// Removed while we waited: let release clean up, then start over
		// with a fresh entry.
		p.release(e)
	}
}

// release unlocks e, shutting its exporter down if e was removed meanwhile.
func (p *Pool) release(e *entry) {
	p.mu.Lock()
	removed := e.removed
	p.mu.Unlock()
	if removed && e.exp != nil {
		// Detached from the export's context, which may have ended: the
		// connections must be closed regardless.
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		_ = e.exp.shutdown(ctx)
		cancel()
		e.exp = nil
	}
	<-e.lock
}

// drain waits for e's lock and shuts its exporter down. If ctx ends first,
// the holder of the lock does it on release.
func (p *Pool) drain(ctx context.Context, e *entry) error {
	select {
	case e.lock <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	var err error
	if e.exp != nil {
		err = e.exp.shutdown(ctx)
		e.exp = nil
	}
	<-e.lock
	return err
}
