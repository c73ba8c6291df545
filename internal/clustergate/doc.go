// Package clustergate decides, for each remote cluster, whether a read may
// go to its API server now, so that a cluster that hangs, trickles or is
// down cannot hold the shared workers every other tenant's metrics need.
//
// A Gate keeps per cluster the reads in flight and a back-off. A healthy
// cluster admits up to Options.MaxReads reads at once; one more is refused
// with ErrBusy and the caller tries again shortly, without waiting and
// without a change of status. A read whose cluster did not answer (the
// caller reports it with Pass.Report: a ClusterUnreachable error, or its
// deadline passed) puts the cluster into back-off for Options.Base,
// doubling with each failure in a row up to Options.Max. During back-off
// every read is refused at once with a *BackoffError that says until
// when; no request is sent and no worker waits. When the back-off ends,
// the Gate itself runs Options.Probe, one at a time, in a goroutine of its
// own: a probe that fails starts the next, longer back-off; one that
// succeeds lets one read through at a time until a read succeeds, which
// makes the cluster healthy again. Options.Changed hears of both
// transitions, so that the cluster's metrics fail fast, or are read again,
// at once rather than at their next interval.
//
// Per cluster is not enough when one tenant has many clusters: each that
// hangs would hold its share of the workers until it backs off. So a Gate
// with Options.Tenant also bounds the workers that wait at once on the
// clusters of one tenant, however many it has, to Options.MaxTenantReads:
// a read is made for a Worker, whose first admitted read takes a place of
// the tenant and whose further reads of the tenant's clusters, one after
// the other or side by side (a federated poll), share it until
// Worker.Done. Over the bound the read is refused with ErrTenantBusy, an
// ErrBusy. The place is given back when the worker stops waiting, not
// when the read ends: it bounds workers, and a read left to end in the
// background still counts against its cluster.
//
// The local cluster is not gated: its API server is the one the operator
// itself depends on, and it has no tenant behind it.
//
// The Gate knows nothing of connections or messages; internal/clusters
// owns one and turns its answers into conditions.
package clustergate
