// Package otlp pushes metric snapshots to DataSinks over OTLP.
//
// It owns two things: turning a snapshot (a Metric with one Point per
// series) into an OTLP Gauge with int64 data points, and a Pool of OTLP
// exporters, one per DataSink, that are built once and reused. The exporters
// are the OpenTelemetry Go SDK's otlpmetrichttp and otlpmetricgrpc, called
// directly with a metricdata.ResourceMetrics built here: there is no
// MeterProvider, no reader and no SDK aggregation, because the values were
// already aggregated by the caller and a push must carry exactly the series
// that exist now (a series that went away must not linger). Strings that
// are not valid UTF-8 are repaired here, because protobuf refuses the
// whole request for one of them.
//
// An exporter is rebuilt only when the DataSink's resolved configuration
// changes, which the caller signals through datasink.Target.Fingerprint.
// Exports to one sink are serialised; different sinks never wait on each
// other.
//
// One Export is one attempt: the SDK's own retry is disabled and every
// export is bounded by Options.Timeout, connecting included. The caller
// retries with its own backoff and fresh values, which is better than
// replaying stale ones, and a failed export has to surface quickly as the
// metrics' ExportFailed condition. The SDK exporters send synchronously and
// keep nothing after Export returns, so a sink that is down buffers no
// points here. Remove closes a sink's connections (its DataSink was
// deleted); Shutdown closes all. Errors never
// contain header values, so an API key cannot leak into logs or status.
//
// The package must not read Kubernetes objects or Secrets: resolving a
// DataSink into a Target is internal/datasink's job.
package otlp
