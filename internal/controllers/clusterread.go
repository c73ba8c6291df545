package controllers

import (
	"context"
	"math/rand/v2"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/remotelimit"
)

// Every worker that waits on a remote cluster's API server waits through
// boundedRead: a cluster a tenant runs may hang, and the workers are
// shared by every tenant's metrics.

// accessWorkers is how many RemoteClusterAccesses, and how many
// FederatedClusterAccesses, are reconciled at once. Each waits for its
// clusters' probes (up to 10 s for one that hangs, once per back-off), so
// that a tenant's access to a server that hangs does not delay the
// others' by that much.
const accessWorkers = 4

// resolveTimeout bounds how long a registration waits for a remote
// cluster's discovery (a kind's REST mapping, cached after the first).
const resolveTimeout = 15 * time.Second

// pollDeadline bounds one poll of a remote cluster: no longer than the
// metric's interval, after which the poll would be due again, and than
// the minute a remote request may take anyway.
func pollDeadline(interval time.Duration) time.Duration {
	return min(interval, remotelimit.DefaultRequestTimeout)
}

// busyRetry is how soon a metric whose cluster had its share of reads in
// flight, or whose access's namespace its share of the workers
// (clusters.ErrBusy), is tried again; spread, so that a cluster's metrics
// do not all come back at once.
func busyRetry() time.Duration {
	return time.Second + rand.N(time.Second)
}

// boundedRead runs read against conn's cluster within the bound and
// through the gate of set (clusters.Set.Read); without a set, directly.
func boundedRead(ctx context.Context, set *clusters.Set, conn *clusters.Connection, within time.Duration,
	read func(ctx context.Context) error) error {
	if set == nil {
		return read(ctx)
	}
	return set.Read(ctx, conn, within, read)
}

// resolveTarget maps a kind on conn's cluster, a remote one within
// resolveTimeout and through its gate.
func resolveTarget(ctx context.Context, set *clusters.Set, conn *clusters.Connection, gvk schema.GroupVersionKind) (
	*meta.RESTMapping, error) {
	var mapping *meta.RESTMapping
	err := boundedRead(ctx, set, conn, resolveTimeout, func(context.Context) error {
		m, err := conn.Lister.Mapping(gvk)
		mapping = m
		return err
	})
	if err != nil {
		return nil, err
	}
	return mapping, nil
}
