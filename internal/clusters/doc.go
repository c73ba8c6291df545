// Package clusters holds the connections to the clusters metrics read: the
// local one the operator runs in, and every remote cluster a
// RemoteClusterAccess describes. A connection is a transport (one HTTP
// client per cluster and set of credentials), the dynamic and metadata
// clients the shared watches use, a discovery REST mapper that refreshes
// on a miss, and the targets.Lister polling metrics read through.
//
// The RemoteClusterAccess controller Defines how to reach a cluster; the
// metric reconcilers Acquire its connection for each metric that reads it
// and Release it when the metric goes or reads elsewhere. A connection is
// made at the first Acquire and closed at the last Release, when its
// watches are released too. A new Definition rebuilds the connection (and
// restarts its watches) only when the endpoint or the TLS identity
// changed, which a fingerprint tells; a new bearer token is swapped into
// the running transport, which reads the current token on every request,
// so a renewed or rotated token never restarts a watch.
//
// With an egress.List (--cluster-allowed-endpoints), a server the list
// does not admit is refused with EndpointNotAllowed before anything
// connects to it, and every connection is checked again when it is
// dialled, its address too when the server was admitted by address, so
// that DNS rebinding reaches nothing outside the list. This is the one
// place remote connections are made, so RemoteClusterAccesses, the
// clusters FederatedClusterAccesses discover and whatever reads them all
// go through it.
//
// Whatever a remote API server answers is bounded (internal/remotelimit,
// --max-remote-response-bytes and fixed timeouts): a server a tenant runs
// cannot make the operator read an endless response, nor hold a request,
// and the worker waiting for it, without end.
//
// Bounds per answer do not keep a server that hangs from holding the
// workers that wait for it, one after the other. So every read of a remote
// cluster goes through Read and a clustergate.Gate: a read gets a deadline
// and its worker is freed when it passes; a cluster whose read found it
// unreachable or ran out of time is in back-off, during which its reads,
// and the access controllers' probes, fail at once with a
// ClusterUnreachable error saying when it is tried again, and the gate
// alone probes it, in the background, to find it back; a cluster has at
// most a few reads in flight, so it can never hold more than that share
// of the workers; and the clusters of the accesses of one namespace have
// at most a few workers waiting on them together, however many accesses
// the namespace creates, so that one tenant's clusters can never hold all
// the workers either.
//
// No error it returns quotes a kubeconfig, a server's answer or an
// address: they name the field at fault and the kind of failure, one
// fixed message per kind, so that status cannot be used to scan ports.
// The one thing it logs is the cause of a failed probe, at V(1).
package clusters
