package prometheus

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

// reservedPrefixes start the names of the families the operator serves
// itself: Go runtime, process, controller-runtime, client-go, the
// promhttp handler's own counters and the operator's self-metrics. Some
// of them only appear once something happened (a vector without
// children is not gathered), so gathering alone would miss them.
var reservedPrefixes = []string{
	"go_", "process_", "controller_runtime_", "workqueue_", "rest_client_",
	"leader_election_", "certwatcher_", "metrics_operator_", "promhttp_",
}

// processNamesTTL is how long the families gathered from the process's
// registry are trusted; collectors registered later are seen after it.
const processNamesTTL = 10 * time.Second

// processNames caches the family names the process's registry serves
// besides the users' metrics.
type processNames struct {
	gatherer prometheus.Gatherer

	// refresh serialises gathers; scrapes read names without a lock.
	refresh sync.Mutex
	at      time.Time
	names   atomic.Pointer[map[string]struct{}]
}

// reservedPrefix returns the reserved prefix name starts with.
func reservedPrefix(name string) (string, bool) {
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return p, true
		}
	}
	return "", false
}

// CheckName refuses an exported name whose Prometheus family would clash
// with one the operator serves itself: such a family would either hide
// the operator's own metric or break the scrape. The error carries the
// reason ReservedName.
func (c *Collector) CheckName(name string) error {
	n := SanitizeName(name)
	if p, ok := reservedPrefix(n); ok {
		return reason.New(v1alpha1.ReasonReservedName,
			"metric name %q is the Prometheus family %q, and names starting with %q belong to the operator's own metrics on /metrics; "+
				"choose another spec.name (metadata.name is used when spec.name is empty)", name, n, p)
	}
	if c.servedByProcess(n) {
		return reason.New(v1alpha1.ReasonReservedName,
			"metric name %q is the Prometheus family %q, which the operator serves itself on /metrics; "+
				"choose another spec.name (metadata.name is used when spec.name is empty)", name, n)
	}
	return nil
}

// reserved reports whether name is reserved as far as known without
// gathering; scrapes use it so that a family that slipped past CheckName
// never reaches them.
func (c *Collector) reserved(name string) bool {
	if _, ok := reservedPrefix(name); ok {
		return true
	}
	if c.process == nil {
		return false
	}
	names := c.process.names.Load()
	if names == nil {
		return false
	}
	_, ok := (*names)[name]
	return ok
}

// servedByProcess reports whether the process's registry serves a family
// that name would clash with, gathering it when the cached names are
// older than processNamesTTL.
func (c *Collector) servedByProcess(name string) bool {
	p := c.process
	if p == nil {
		return false
	}
	p.refresh.Lock()
	defer p.refresh.Unlock()
	if p.names.Load() == nil || time.Since(p.at) > processNamesTTL {
		// The users' families are not in the process's registry (they
		// are written beside it), so every family gathered is the
		// process's. A gather error still returns every family that could
		// be read.
		mfs, _ := p.gatherer.Gather()
		names := make(map[string]struct{}, len(mfs))
		for _, mf := range mfs {
			addFamilyNames(names, mf)
		}
		p.names.Store(&names)
		p.at = time.Now()
	}
	_, ok := (*p.names.Load())[name]
	return ok
}

// addFamilyNames adds the names a family occupies: a histogram or summary
// also owns the _count, _sum and _bucket series the registry checks
// gauges against.
func addFamilyNames(names map[string]struct{}, mf *dto.MetricFamily) {
	n := mf.GetName()
	names[n] = struct{}{}
	switch mf.GetType() {
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM, dto.MetricType_SUMMARY:
		for _, suffix := range []string{"_count", "_sum", "_bucket"} {
			names[n+suffix] = struct{}{}
		}
	}
}
