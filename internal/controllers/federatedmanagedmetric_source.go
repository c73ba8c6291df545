package controllers

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/reason"
)

// federatedManagedMetricKind is the coordinator's Key.Kind for
// FederatedManagedMetric objects.
const federatedManagedMetricKind = "FederatedManagedMetric"

// clusterPhase is where one cluster of a federated metric stands.
type clusterPhase int

const (
	// clusterPending: not read yet (connecting, listing its CRDs, filling
	// its parts).
	clusterPending clusterPhase = iota
	// clusterActive: read; its series are exported.
	clusterActive
	// clusterFailed: cannot be read now; its series are left out.
	clusterFailed
)

// federatedCluster is one cluster of a FederatedManagedMetric.
type federatedCluster struct {
	key, name string
	// src reads the cluster; nil while its connection or its managed kinds
	// are not known.
	src   *managedSource
	phase clusterPhase
	err   error
}

// federatedManagedSource is the coordinator Source of one
// FederatedManagedMetric generation: the series of its active clusters,
// each under its own "cluster" dimension. A cluster that fails is left
// out and named in the Ready message; the others go on.
type federatedManagedSource struct {
	coord     *coordinator.Coordinator
	update    coordinator.Update // Source is the federatedManagedSource itself
	maxSeries int

	mu       sync.Mutex
	clusters map[string]*federatedCluster // by connection key

	// reportMu orders what evaluate tells the coordinator; it is never
	// held while mu is, and the coordinator never calls back into it.
	reportMu  sync.Mutex
	published bool
	lastErr   string
}

var _ coordinator.Source = (*federatedManagedSource)(nil)

// sortedLocked returns the clusters by key; mu must be held.
func (f *federatedManagedSource) sortedLocked() []*federatedCluster {
	out := make([]*federatedCluster, 0, len(f.clusters))
	for _, c := range f.clusters {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *federatedCluster) int { return strings.Compare(a.key, b.key) })
	return out
}

// Snapshot returns the series of the active clusters.
func (f *federatedManagedSource) Snapshot() []coordinator.ClusterSeries {
	var srcs []*managedSource
	f.mu.Lock()
	for _, c := range f.sortedLocked() {
		if c.phase == clusterActive && c.src != nil {
			srcs = append(srcs, c.src)
		}
	}
	f.mu.Unlock()
	out := make([]coordinator.ClusterSeries, 0, len(srcs))
	for _, s := range srcs {
		out = append(out, s.Snapshot()...)
	}
	return out
}

// Warning names the clusters that failed or are not read yet, and the
// first cluster that leaves managed kinds out.
func (f *federatedManagedSource) Warning() string {
	f.mu.Lock()
	cs := f.sortedLocked()
	f.mu.Unlock()
	var failed []*federatedCluster
	pending := 0
	var kindsLeftOut string
	for _, c := range cs {
		switch c.phase {
		case clusterFailed:
			failed = append(failed, c)
		case clusterPending:
			pending++
		case clusterActive:
			if w := c.src.Warning(); w != "" && kindsLeftOut == "" {
				kindsLeftOut = "cluster " + c.name + ": " + w
			}
		}
	}
	var out []string
	if len(cs) == 0 {
		out = append(out, "the FederatedClusterAccess discovers no clusters (yet)")
	}
	if len(failed) > 0 {
		out = append(out, fmt.Sprintf("%d of %d clusters cannot be read and are left out: %s", len(failed), len(cs), failures(failed)))
	}
	if pending > 0 {
		out = append(out, fmt.Sprintf("%d of %d clusters not read yet", pending, len(cs)))
	}
	if kindsLeftOut != "" {
		out = append(out, kindsLeftOut)
	}
	return strings.Join(out, "; ")
}

// failures names the failed clusters with their reasons, and why the
// first one failed.
func failures(failed []*federatedCluster) string {
	names := make([]string, 0, len(failed))
	for _, c := range failed {
		names = append(names, c.name+" ("+reason.Of(c.err, v1alpha1.ReasonClusterUnreachable)+")")
	}
	return shortList(names) + "; cluster " + failed[0].name + ": " + failed[0].err.Error()
}

// counts returns how many clusters are active, failed and pending.
func (f *federatedManagedSource) counts() v1alpha1.FederatedObservation {
	f.mu.Lock()
	defer f.mu.Unlock()
	var o v1alpha1.FederatedObservation
	for _, c := range f.clusters {
		switch c.phase {
		case clusterActive:
			o.ActiveCount++
		case clusterFailed:
			o.FailedCount++
		default:
			o.PendingCount++
		}
	}
	return o
}

// source returns the cluster's current source, or nil.
func (f *federatedManagedSource) source(key string) *managedSource {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.clusters[key]; c != nil {
		return c.src
	}
	return nil
}

// install makes src the cluster's source; a new source is pending until
// its parts are filled.
func (f *federatedManagedSource) install(key, name string, src *managedSource) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.clusterLocked(key)
	c.name = name
	if c.src != src {
		c.src, c.phase, c.err = src, clusterPending, nil
	}
}

// clusterLocked returns the cluster key, adding it if new; mu must be
// held.
func (f *federatedManagedSource) clusterLocked(key string) *federatedCluster {
	c := f.clusters[key]
	if c == nil {
		c = &federatedCluster{key: key}
		f.clusters[key] = c
	}
	return c
}

// pend records a cluster not known before as pending.
func (f *federatedManagedSource) pend(key, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.clusters[key] == nil {
		f.clusters[key] = &federatedCluster{key: key, name: name}
	}
}

// fail records that the cluster cannot be read, without a source; it
// returns the source it had, whose parts the caller drops.
func (f *federatedManagedSource) fail(key, name string, err error) *managedSource {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.clusterLocked(key)
	old := c.src
	c.name, c.src, c.phase, c.err = name, nil, clusterFailed, err
	return old
}

// remove forgets a cluster that left the access.
func (f *federatedManagedSource) remove(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.clusters, key)
}

// keys returns the clusters' keys.
func (f *federatedManagedSource) keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.clusters))
	for k := range f.clusters {
		out = append(out, k)
	}
	return out
}

// set records the phase a cluster's source src reached, unless src is no
// longer the cluster's source; it reports whether it was.
func (f *federatedManagedSource) set(key string, src *managedSource, phase clusterPhase, err error) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.clusters[key]
	if c == nil || c.src != src {
		return false
	}
	c.phase, c.err = phase, err
	return true
}

// active reports whether src is the cluster's source and exported.
func (f *federatedManagedSource) active(key string, src *managedSource) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.clusters[key]
	return c != nil && c.src == src && c.phase == clusterActive
}

// evaluate tells the coordinator about the clusters' series. Until every
// cluster was read or failed once, nothing is published, so a metric
// never starts with a partial count; after that a pending cluster (one
// that joined) is left out until it is read. With no cluster read and
// some failed, the metric reports the first failure and is withdrawn.
// publish says that a cluster's phase or the set of clusters changed;
// dataChanged, that series may have changed.
func (f *federatedManagedSource) evaluate(publish, dataChanged bool) {
	f.reportMu.Lock()
	defer f.reportMu.Unlock()
	f.mu.Lock()
	cs := f.sortedLocked()
	var active, pending, series int
	var failed []*federatedCluster
	for _, c := range cs {
		switch c.phase {
		case clusterActive:
			active++
			for _, p := range c.src.current() {
				series += p.agg.SeriesLen()
			}
		case clusterFailed:
			failed = append(failed, c)
		default:
			pending++
		}
	}
	f.mu.Unlock()
	var err error
	switch {
	case !f.published && f.lastErr == "" && pending > 0:
		return
	case active == 0 && len(failed) > 0:
		err = reason.New(reason.Of(failed[0].err, v1alpha1.ReasonClusterUnreachable),
			"none of the %d clusters can be read: %s", len(cs), failures(failed))
	case f.maxSeries > 0 && series > f.maxSeries:
		err = reason.New(v1alpha1.ReasonSeriesLimitExceeded,
			"the metric has %d series over all clusters, more than %d, its limit (the lower of spec.maxSeries and the operator's "+
				"--max-series-per-metric); nothing is exported until it has fewer", series, f.maxSeries)
	}
	switch {
	case err != nil:
		if f.published || publish || f.lastErr != err.Error() {
			f.coord.SetError(f.update.Key, f.update.Generation, err)
		}
		f.published, f.lastErr = false, err.Error()
	case !f.published || publish:
		f.coord.Publish(f.update, dataChanged || !f.published)
		f.published, f.lastErr = true, ""
	case dataChanged:
		f.coord.Changed(f.update.Key)
	}
}

// clusterReport hears one cluster's source and turns it into the
// cluster's phase.
type clusterReport struct {
	fed *federatedManagedSource
	key string
	src *managedSource
}

func (c clusterReport) ready() {
	if c.fed.set(c.key, c.src, clusterActive, nil) {
		c.fed.evaluate(true, true)
	}
}

func (c clusterReport) changed() {
	if c.fed.active(c.key, c.src) {
		c.fed.evaluate(false, true)
	}
}

func (c clusterReport) failed(err error) {
	if c.fed.set(c.key, c.src, clusterFailed, err) {
		c.fed.evaluate(true, false)
	}
}
