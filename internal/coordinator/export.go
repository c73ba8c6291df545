package coordinator

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/export/otlp"
	"github.com/SAP/metrics-operator/internal/reason"
)

// maxPointsPerRequest and maxRequestBytes bound one OTLP request; a sink
// with more due gets several, so no backend's request size limit is hit.
// The bytes are estimated (requestBytes); 2 MiB stays well below the
// smallest limit receivers commonly keep, gRPC's default of 4 MiB per
// message, which the OpenTelemetry Collector does not raise.
const (
	maxPointsPerRequest = 10000
	maxRequestBytes     = 2 << 20
)

// turnWait is how long a sink whose namespace has all its pushes running
// waits before it asks again: short against the heartbeat, long enough
// that a tenant's many sinks waiting cost next to nothing.
const turnWait = 300 * time.Millisecond

// due is one metric to push in a sink's next request.
type due struct {
	key        Key
	update     *Update
	seq        uint64
	dirtySince time.Time
}

// dispatchExport takes one sink off the export queue and pushes it on a
// goroutine of its own, so a sink that is slow or never answers holds up
// nobody else; false means stop. The queue hands a sink out again only
// after Done, so one sink never has two pushes at once. A namespace with
// MaxPushesPerNamespace pushes running has its sink asked again after
// turnWait, its metrics still due.
func (c *Coordinator) dispatchExport(ctx context.Context) bool {
	sink, quit := c.exports.Get()
	if quit {
		return false
	}
	if !c.takeTurn(sink.Namespace) {
		turnsWaited.WithLabelValues(sink.Namespace).Inc()
		c.exports.Done(sink)
		c.exports.AddAfter(sink, turnWait)
		return true
	}
	c.pushes.Go(func() {
		defer c.exports.Done(sink)
		defer c.endTurn(sink.Namespace)
		c.processExport(ctx, sink)
	})
	return true
}

// takeTurn reserves one of namespace's pushes; false when all are taken.
func (c *Coordinator) takeTurn(namespace string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if limit := c.opts.MaxPushesPerNamespace; limit > 0 && c.inFlight[namespace] >= limit {
		return false
	}
	c.inFlight[namespace]++
	return true
}

// endTurn releases what takeTurn reserved.
func (c *Coordinator) endTurn(namespace string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inFlight[namespace]--; c.inFlight[namespace] <= 0 {
		delete(c.inFlight, namespace)
	}
}

// processExport pushes what is due at sink, then schedules its next push:
// the next heartbeat after a success, the backoff after a failure.
func (c *Coordinator) processExport(ctx context.Context, sink types.NamespacedName) {
	changes := c.sinkChanges(sink)
	if _, _, found := c.opts.Sinks.Get(sink); !found {
		// The DataSink is gone (or never was): its connections go too.
		// Metrics still naming it report DataSinkNotFound below.
		c.closeExporter(ctx, sink)
	}
	batch, explicit, wait := c.dueAt(sink)
	if len(batch) == 0 {
		if wait > 0 {
			c.exports.AddAfter(sink, wait)
		}
		return
	}
	target, sinkErr := c.resolveSink(SinkRef{NamespacedName: sink, Explicit: explicit})
	if target == nil {
		// No sink to push to (none configured, or it does not resolve):
		// SinkChanged brings the metrics back when that changes.
		c.finish(batch, sinkErr, nil, time.Time{})
		c.markUnresolved(sink, changes)
		return
	}

	log := ctrl.LoggerFrom(ctx).WithValues("sink", sink.String())
	start := time.Now()
	// The series are rendered now, from the aggregates, and dropped after
	// the request: a sink that is down costs no memory however long it
	// stays down, and its first push after recovering carries current
	// values.
	chs := chunks(batch, start)
	var err error
	for i, chunk := range chs {
		err = c.pushChunk(ctx, sink, target, chunk)
		if err != nil {
			log.Error(err, "Export failed; retrying with backoff", "metrics", len(chunk.metrics))
			// The rest would most likely fail alike, each costing up to
			// the timeout: they go with the retry.
			for _, rest := range chs[i:] {
				c.finish(rest.items, nil, err, start)
			}
			break
		}
		log.V(1).Info("Exported", "metrics", len(chunk.metrics), "points", chunk.points,
			"duration", time.Since(start).String())
		c.finish(chunk.items, nil, nil, start)
	}
	c.recordAttempt(sink, err)
}

// sinkChanges returns how many times SinkChanged was called for sink.
func (c *Coordinator) sinkChanges(sink types.NamespacedName) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.sinks[sink]; s != nil {
		return s.changes
	}
	return 0
}

// markUnresolved records that sink had nowhere to push to, unless
// SinkChanged was called since it was resolved (changes).
func (c *Coordinator) markUnresolved(sink types.NamespacedName, changes uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.sinks[sink]; s != nil && s.changes == changes {
		s.unresolved = true
	}
}

// pushChunk sends one request, bounded by ExportTimeout.
func (c *Coordinator) pushChunk(ctx context.Context, sink types.NamespacedName, target *datasink.Target, ch chunk) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ExportTimeout)
	defer cancel()
	t0 := time.Now()
	err := c.opts.Exporter.Export(ctx, sink.String(), target, ch.metrics)
	exportDuration.Observe(time.Since(t0).Seconds())
	if err != nil {
		exportsTotal.WithLabelValues("failure").Inc()
		return err
	}
	exportsTotal.WithLabelValues("success").Inc()
	return nil
}

// recordAttempt updates sink's backoff after a push and queues it again:
// after the backoff when err is set, else when its next metric is due.
func (c *Coordinator) recordAttempt(sink types.NamespacedName, err error) {
	c.mu.Lock()
	s := c.sinks[sink]
	if s != nil {
		if err != nil {
			s.failures++
			wait := max(c.opts.ExportBackoff.Delay(s.failures), c.opts.MinExportInterval)
			s.retryAt = time.Now().Add(wait)
		} else {
			s.failures, s.retryAt = 0, time.Time{}
		}
		exportFailures.WithLabelValues(sink.String()).Set(float64(s.failures))
	}
	c.mu.Unlock()
	if s == nil {
		return
	}
	switch batch, _, next := c.dueAt(sink); {
	case len(batch) > 0:
		c.exports.Add(sink)
	case next > 0:
		c.exports.AddAfter(sink, next)
	}
}

// closeExporter releases the connections of a DataSink that is gone, when
// the Exporter holds any. A push still running to it closes them when it
// ends.
func (c *Coordinator) closeExporter(ctx context.Context, sink types.NamespacedName) {
	r, ok := c.opts.Exporter.(interface {
		Remove(ctx context.Context, key string) error
	})
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.ExportTimeout)
	defer cancel()
	if err := r.Remove(ctx, sink.String()); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Closing the exporter of a deleted DataSink failed", "sink", sink.String())
	}
}

// dueAt returns the metrics of sink to push now: changed since their last
// push, failed last time, at their heartbeat, or all after SinkChanged. When none is due, or the
// sink pushed less than MinExportInterval ago, it returns how long to wait.
func (c *Coordinator) dueAt(sink types.NamespacedName) (batch []due, explicit bool, wait time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sinks[sink]
	if s == nil {
		return nil, false, 0
	}
	s.pending = false // later changes queue the sink again
	for key := range s.members {
		if st := c.metrics[key]; st != nil {
			st.quiet.Store(false) // and are recorded in full, for this push or the next
		}
	}
	c.sinkWalks.Add(1)
	now := time.Now()
	if now.Before(s.retryAt) {
		return nil, false, s.retryAt.Sub(now)
	}
	if since := now.Sub(s.lastExport); since < c.opts.MinExportInterval {
		return nil, false, c.opts.MinExportInterval - since
	}
	for key := range s.members {
		st := c.metrics[key]
		if st == nil || st.update == nil || st.evalErr != nil {
			continue // withdrawn: Publish queues it again
		}
		if owner, _ := c.ownerLocked(key); !owner {
			continue // an older metric owns the name; its status says so
		}
		heartbeat := st.lastExport.Add(st.update.Interval)
		if !s.resend && st.exportErr == nil && st.sinkErr == nil && st.exportedSeq == st.seq && now.Before(heartbeat) {
			if w := heartbeat.Sub(now); wait == 0 || w < wait {
				wait = w
			}
			continue
		}
		batch = append(batch, due{key: key, update: st.update, seq: st.seq, dirtySince: st.dirtySince})
		explicit = explicit || st.update.Sink.Explicit
	}
	s.resend = false
	return batch, explicit, wait
}

// finish records the outcome of pushing items.
func (c *Coordinator) finish(items []due, sinkErr, exportErr error, pushed time.Time) {
	c.mu.Lock()
	for _, d := range items {
		st, ok := c.metrics[d.key]
		if !ok {
			continue
		}
		st.sinkErr, st.exportErr = sinkErr, exportErr
		if sinkErr == nil && exportErr == nil && !pushed.IsZero() {
			st.lastExport, st.exportedSeq = pushed, d.seq
			if st.seq == d.seq {
				st.dirtySince = time.Time{}
			}
			if s := c.sinks[d.update.Sink.NamespacedName]; s != nil {
				s.lastExport = pushed
			}
			if !d.dirtySince.IsZero() {
				changeToExport.Observe(time.Since(d.dirtySince).Seconds())
			}
		}
	}
	c.mu.Unlock()
	for _, d := range items {
		c.status.Add(d.key)
	}
}

// chunk is one request's worth of metrics.
type chunk struct {
	// items are the metrics whose push this request completes: a metric
	// split over several requests is an item of the last, which a failure
	// of an earlier one never reaches (the rest of the push fails with it).
	items   []due
	metrics []otlp.Metric
	points  int
	bytes   int
}

// chunks renders the batch into requests of at most maxPointsPerRequest
// points and about maxRequestBytes bytes. A metric that does not fit in
// what is left of a request is split over several: one tenant's metric
// with many long labels must not make a request too large for the sink,
// which would refuse it and every other metric in it. Only a single point
// larger than the bound makes a larger request, of its own.
func chunks(batch []due, now time.Time) []chunk {
	var out []chunk
	var cur chunk
	for _, d := range batch {
		m := otlpMetric(d.update, now)
		header := len(m.Name) + len(m.Description) + 16
		part := otlp.Metric{Name: m.Name, Description: m.Description}
		for _, p := range m.Points {
			size := pointBytes(p)
			if cur.points > 0 && (cur.points == maxPointsPerRequest || cur.bytes+header+size > maxRequestBytes) {
				if len(part.Points) > 0 {
					cur.metrics = append(cur.metrics, part)
					part = otlp.Metric{Name: m.Name, Description: m.Description}
				}
				out, cur = append(out, cur), chunk{}
			}
			if len(part.Points) == 0 {
				cur.bytes += header
			}
			part.Points = append(part.Points, p)
			cur.points++
			cur.bytes += size
		}
		cur.items, cur.metrics = append(cur.items, d), append(cur.metrics, part)
	}
	if len(cur.metrics) > 0 {
		out = append(out, cur)
	}
	return out
}

// pointBytes estimates what p adds to an OTLP request: its attributes'
// keys and values, and what protobuf puts around them and the point.
func pointBytes(p otlp.Point) int {
	n := 32
	for _, a := range p.Attributes {
		n += len(a.Key) + len(a.Value) + 12
	}
	return n
}

// resolveSink returns the sink's Target; (nil, nil) when the metric uses
// the default sink and there is none.
func (c *Coordinator) resolveSink(ref SinkRef) (*datasink.Target, error) {
	t, err, found := c.opts.Sinks.Get(ref.NamespacedName)
	switch {
	case !found && ref.Explicit:
		return nil, reason.New(v1alpha1.ReasonDataSinkNotFound,
			"DataSink %s does not exist: create it or fix spec.dataSinkRef", ref.String())
	case !found:
		return nil, nil
	case err != nil:
		// Keep the sink's own reason (SecretNotFound, ...): it says what
		// to fix better than a generic one.
		return nil, reason.New(reason.Of(err, v1alpha1.ReasonDataSinkNotReady),
			"DataSink %s is not ready: %v", ref.String(), err)
	}
	return t, nil
}
