// Package federation holds what FederatedClusterAccesses discover: the
// watches on the local objects that stand for clusters, and the current
// clusters of each access.
//
// Watches keeps one watch per (resource, namespace, label selector) of
// the local cluster, shared by every access that discovers clusters from
// it and stopped when its last access goes. Its objects are held in the
// watch's store (they are few: one per cluster) so that an access reads
// them on every reconcile without a LIST; each change calls back every
// access using the watch.
//
// Members records the clusters each access discovered, as keys of
// internal/clusters connections and the names of their "cluster"
// dimension, and tells subscribers (the federated metrics) when an
// access's set of clusters changed.
//
// FanOut spreads one federated metric, a FederatedMetric or a
// FederatedManagedMetric alike, over the clusters of its access: one
// part per cluster, and where each cluster stands (pending, active,
// failed). A cluster that becomes unreachable keeps its last series for
// a grace period; metrics_operator_cluster_up reports what the metrics
// reading a cluster last found.
package federation
