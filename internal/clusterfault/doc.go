// Package clusterfault turns the error of a request to a cluster's API
// server into the condition reason it causes: EndpointNotAllowed for a
// dial that --cluster-allowed-endpoints refused, Forbidden for refused
// credentials or access, ClusterUnreachable for everything else. It is
// the one mapping of these errors: the cluster connections
// (internal/clusters) classify polls and probes with it, and the shared
// watches (internal/informers), which the connections build on and so
// cannot import them, classify a watch that lost its cluster with it.
//
// Its messages never quote the API server's answer nor the cause of a
// failed dial: a tenant who may point a kubeconfig anywhere must not
// learn from them whether a port is open or what a name resolves to.
package clusterfault
