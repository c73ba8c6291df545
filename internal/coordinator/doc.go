// Package coordinator is the MetricUpdateCoordinator: the one place that
// turns a metric's current series into exports. Producers (the polling
// reconciler, the event-driven handlers) Publish series or report an
// error; the coordinator
//
//   - updates the Prometheus collector at once, so /metrics reflects a
//     change as soon as it is published;
//   - pushes to the metric's DataSink over OTLP, coalescing bursts (at most
//     one push per metric per MinExportInterval) and sending a heartbeat
//     every spec.interval when nothing changed; failures back off;
//   - writes the metric's status through a StatusWriter, rate-limited per
//     metric, and at once on a condition transition.
//
// It must not read target objects or evaluate them: it only moves results.
// Its workers run as a manager Runnable that needs leader election, so
// only the leader pushes and writes status.
package coordinator
