// Package informers is the DynamicInformerManager: one shared watch per
// (cluster, resource, namespace scope), however many metrics use it,
// reference-counted through the registry and stopped as soon as its last
// metric leaves or moves to another target.
//
// A watch here is a client-go Reflector whose store is the events
// handler: objects are evaluated as they arrive and then dropped, so
// memory grows with what metrics keep per object (a series and a value),
// not with the objects. A watch whose metrics read nothing but metadata
// uses the metadata API, which is far cheaper to decode; it is upgraded
// to full objects when a metric that needs them joins. On the operator's
// own cluster its events are decoded from protobuf straight into the maps
// the evaluation engine reads, skipping managedFields (NewMetadataClient);
// remote clusters, which a tenant may run, keep the standard decoder. A
// watch's own
// list (its start, a relist after it expired) is streamed: a watch with
// sendInitialEvents, which the API server answers from its watch cache in
// one response, applied object by object; a server that refuses it (older
// than Kubernetes 1.27, or the WatchList feature off) is listed page by
// page. A metric joining a running watch gets the current objects from one
// paginated LIST, made while the watch's events are held back so it never
// sees them out of order.
//
// Watches of remote clusters (internal/clusters) differ in two ways: a
// watch that cannot reach its API server, or is refused its credentials,
// withdraws its metrics with ClusterUnreachable until it can again (then a
// list refills them), while the local cluster's metrics keep their values
// through an outage of the operator's own API server; and RestartCluster
// moves every watch of a cluster to its rebuilt connection, ReleaseCluster
// stops them when the connection closes.
//
// What watches hold is bounded per watch (limit.go: objects, and the
// size of a remote cluster's answers) and, for remote clusters, per
// tenant, the namespace of the cluster's access (tenant.go: watches, and
// the objects they hold together), so that neither one API server nor
// one tenant's many can exhaust the operator's memory.
//
// The Manager is a manager Runnable that needs leader election; every
// watch stops with the manager's context.
package informers
