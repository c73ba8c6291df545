// Package coordinator is the MetricUpdateCoordinator: the one place that
// turns a metric's current series into exports. Producers (the polling
// reconciler, the event-driven handlers) Publish series or report an
// error; the coordinator
//
//   - decides which metric owns a Prometheus family name when several
//     declare it (the oldest by creation time, then kind/namespace/name;
//     the next in line takes over when the owner goes or renames) and
//     gives the collector the owner's family, whose version it moves on
//     every change, so /metrics renders the family again on the next
//     scrape and not before;
//   - pushes to the metric's DataSink over OTLP, coalescing bursts (at most
//     one push per DataSink per MinExportInterval) and sending a heartbeat
//     every spec.interval when nothing changed. Each DataSink pushes on a
//     goroutine of its own, one request at a time, each bounded by
//     ExportTimeout, so a slow or unreachable sink delays no other
//     namespace's. One namespace's sinks push at most
//     MaxPushesPerNamespace at once, so a tenant's many sinks that never
//     answer hold that many connections, not one per sink. A
//     failing sink is retried after an exponential backoff (Backoff) that
//     no change arriving meanwhile shortens. Points are rendered from the
//     aggregates when a request is made and never queued, so a sink that
//     is down costs no memory and gets current values when it is back;
//   - writes the metric's status through a StatusWriter, rate-limited per
//     metric, and at once on a condition transition. The writes of all
//     metrics share one budget and are taken in turns per namespace, so
//     one tenant's many metrics cannot hold back another's.
//
// It must not read target objects or evaluate them: it only moves results.
// Changed, which the event path calls for every change, only takes the
// coordinator's lock; series are read (Source.Snapshot) by scrapes, pushes
// and status checks without it. Its workers run as a manager Runnable that needs leader election, so
// only the leader pushes and writes status.
package coordinator
