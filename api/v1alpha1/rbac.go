package v1alpha1

// AggregateToOperatorLabel marks a ClusterRole whose rules Kubernetes
// aggregates into the ClusterRole the operator reads Metric targets with
// (config/rbac/targets.yaml). Its value must be "true".
const AggregateToOperatorLabel = "metrics.cloud.sap/aggregate-to-operator"
