// Package otlpsink runs the OpenTelemetry Collector's own OTLP receiver
// in-process as a stand-in for a DataSink backend, so tests exercise the
// real wire protocols (OTLP/HTTP and OTLP/gRPC, optionally TLS or mTLS)
// instead of a hand-written fake.
//
// Every request's pmetric.Metrics is recorded together with the request
// headers (the receiver runs with include_metadata), and helpers reduce them
// to plain structs that are easy to compare. The receiver listens on
// 127.0.0.1 ports chosen by the kernel; Stop and Restart keep those ports, so
// a test can simulate a backend outage without reconfiguring its exporter.
//
// It is a test helper: it takes a testing.TB, fails the test on setup
// errors and must not be imported by production code.
package otlpsink
