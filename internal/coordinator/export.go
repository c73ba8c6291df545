package coordinator

import (
	"context"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/export/otlp"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
	"github.com/SAP/metrics-operator/internal/reason"
)

// processExport handles one key of the export queue; false means stop.
func (c *Coordinator) processExport(ctx context.Context) bool {
	key, quit := c.exports.Get()
	if quit {
		return false
	}
	defer c.exports.Done(key)

	u, seq, dirtySince, wait := c.exportDue(key)
	if u == nil {
		if wait > 0 {
			c.exports.AddAfter(key, wait)
		}
		return true
	}
	if owner, _ := c.opts.Prometheus.Owner(key.String()); !owner {
		return true // an older metric owns the name; its status says so
	}
	target, sinkErr := c.resolveSink(u.Sink)
	c.mu.Lock()
	if st, ok := c.metrics[key]; ok {
		st.sinkErr = sinkErr
	}
	c.mu.Unlock()
	if target == nil {
		// No sink to push to (none configured, or it does not resolve):
		// SinkChanged brings the metric back when that changes.
		c.status.Add(key)
		return true
	}

	start := time.Now()
	m := otlpMetric(u, start)
	err := c.opts.Exporter.Export(ctx, u.Sink.String(), target, []otlp.Metric{m})
	exportDuration.Observe(time.Since(start).Seconds())
	log := ctrl.LoggerFrom(ctx).WithValues("metric", key.String(), "sink", u.Sink.String())

	c.mu.Lock()
	st, ok := c.metrics[key]
	if ok {
		st.exportErr = err
		if err == nil {
			st.lastExport, st.exportedSeq = start, seq
			if st.seq == seq {
				st.dirtySince = time.Time{}
			}
		}
	}
	var interval time.Duration
	if ok && st.update != nil {
		interval = st.update.Interval
	}
	c.mu.Unlock()

	if err != nil {
		exportsTotal.WithLabelValues("failure").Inc()
		log.Error(err, "Export failed; retrying with backoff")
		c.exports.AddRateLimited(key)
		c.status.Add(key)
		return true
	}
	exportsTotal.WithLabelValues("success").Inc()
	if !dirtySince.IsZero() {
		changeToExport.Observe(time.Since(dirtySince).Seconds())
	}
	log.V(1).Info("Exported", "series", len(m.Points))
	c.exports.Forget(key)
	if ok && interval > 0 {
		c.exports.AddAfter(key, interval) // heartbeat
	}
	c.status.Add(key)
	return true
}

// exportDue returns the update to push now, or how long to wait: a push
// is due when the metric changed since the last push (and the last push
// is MinExportInterval old) or when the heartbeat interval passed.
func (c *Coordinator) exportDue(key Key) (u *Update, seq uint64, dirtySince time.Time, wait time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.metrics[key]
	if !ok || st.update == nil {
		return nil, 0, time.Time{}, 0
	}
	since := time.Since(st.lastExport)
	if st.exportErr == nil && st.sinkErr == nil && st.exportedSeq == st.seq && since < st.update.Interval {
		return nil, 0, time.Time{}, st.update.Interval - since
	}
	if since < c.opts.MinExportInterval {
		return nil, 0, time.Time{}, c.opts.MinExportInterval - since
	}
	return st.update, st.seq, st.dirtySince, 0
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

// labelNames are the Prometheus labels of u: base dimensions, cluster,
// then projections.
func labelNames(u *Update) []string {
	names := make([]string, 0, len(u.Base)+1+len(u.DimensionNames))
	for _, b := range u.Base {
		names = append(names, b.Name)
	}
	names = append(names, "cluster")
	return append(names, u.DimensionNames...)
}

// family describes u to the Prometheus collector, which renders the
// samples from u.Source on every scrape.
func family(u *Update) promexport.Family {
	f := promexport.Family{Name: u.Name, Help: u.Description, LabelNames: labelNames(u)}
	base, names, src := u.Base, u.DimensionNames, u.Source
	width := len(f.LabelNames)
	f.Samples = func() []promexport.Sample {
		var out []promexport.Sample
		for _, cs := range src.Snapshot() {
			for _, s := range cs.Series {
				values := make([]string, 0, width)
				for _, b := range base {
					values = append(values, b.Value)
				}
				values = append(values, cs.Cluster)
				values = appendProjected(values, names, s.Dimensions)
				out = append(out, promexport.Sample{LabelValues: values, Value: float64(s.Value)})
			}
		}
		return out
	}
	return f
}

// appendProjected appends the value of each named dimension, "" where the
// series lacks it. Dimensions come in projection order, so one pass does.
func appendProjected(values, names []string, dims []evaluation.Dimension) []string {
	j := 0
	for _, n := range names {
		if j < len(dims) && dims[j].Name == n {
			values = append(values, dims[j].Value)
			j++
		} else {
			values = append(values, "")
		}
	}
	return values
}

func otlpMetric(u *Update, now time.Time) otlp.Metric {
	m := otlp.Metric{Name: u.Name, Description: u.Description}
	for _, cs := range u.Source.Snapshot() {
		for _, s := range cs.Series {
			attrs := make([]otlp.Attr, 0, len(u.Base)+1+len(s.Dimensions))
			for _, b := range u.Base {
				if b.Value != "" {
					attrs = append(attrs, otlp.Attr{Key: b.Name, Value: b.Value})
				}
			}
			attrs = append(attrs, otlp.Attr{Key: "cluster", Value: cs.Cluster})
			for _, d := range s.Dimensions {
				attrs = append(attrs, otlp.Attr{Key: d.Name, Value: d.Value})
			}
			m.Points = append(m.Points, otlp.Point{Attributes: attrs, Value: s.Value, Time: now})
		}
	}
	return m
}
