// Package v1alpha1 holds the metrics.cloud.sap/v1alpha1 API: the kinds users
// write to declare metrics (Metric, ManagedMetric, FederatedMetric,
// FederatedManagedMetric), where their objects live (RemoteClusterAccess,
// FederatedClusterAccess) and where metrics are pushed (DataSink).
//
// The package holds types, schema markers and small helpers that read a
// spec (defaults, the event-driven switch). It must not talk to a cluster.
//
// +kubebuilder:object:generate=true
// +groupName=metrics.cloud.sap
package v1alpha1
