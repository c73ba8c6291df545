package controllers

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/federation"
	"github.com/SAP/metrics-operator/internal/reason"
)

// FederatedMetrics and FederatedManagedMetrics read each cluster of their
// FederatedClusterAccess into a part of their own (a fedPart, a
// fedManagedPart), held by a federation.FanOut that knows where each
// cluster stands. federatedSource is what the two kinds share on top of
// it: the coordinator Source that renders the exported parts as one
// family, the Ready condition while some clusters fail or are pending,
// the limit over all clusters, and when to publish. So both kinds keep an
// unreachable cluster's last series for the grace period, count it
// failed, publish a cluster as soon as it is read and never hold one
// cluster up for another.

// federatedPart is what a federated metric reads of one cluster.
type federatedPart interface {
	// series returns the part's series; ok is false while it has none to
	// give (not read yet, or dropped).
	series() (series []evaluation.Series, ok bool)
	// warning names what of the cluster is left out or has no value; ""
	// when nothing is.
	warning() string
	// load returns how many series the part holds, or the error of a
	// part over its own limits (which then holds nothing: a partial
	// count would be wrong).
	load() (int, error)
}

// federatedSource is the coordinator Source of one generation of one
// federated metric in one mode.
type federatedSource[P federatedPart] struct {
	fan       *federation.FanOut[P]
	coord     *coordinator.Coordinator
	maxSeries int
	// access names the metric's FederatedClusterAccess, for messages.
	access string

	mu     sync.Mutex
	update coordinator.Update // its Source is the federated source

	limited atomic.Bool
	// busy is set when, in the current poll or registration, a cluster
	// had its share of reads in flight already and was left for a retry
	// (clusters.ErrBusy); polls of one metric never overlap.
	busy atomic.Bool
	// broken is set when evaluating a poll panicked: the parts may be
	// inconsistent and are not evaluated again.
	broken atomic.Pointer[error]
}

// newFederatedSource returns a source whose FanOut keeps an unreachable
// cluster's series for grace, and exports the metric again without them
// when it runs out.
func newFederatedSource[P federatedPart](coord *coordinator.Coordinator, grace time.Duration, maxSeries int, access string) *federatedSource[P] {
	s := &federatedSource[P]{coord: coord, maxSeries: maxSeries, access: access}
	s.fan = federation.NewFanOut[P](grace, func() { s.evaluate(true) })
	return s
}

func (s *federatedSource[P]) key() coordinator.Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.update.Key
}

func (s *federatedSource[P]) currentUpdate() coordinator.Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.update
}

// Snapshot returns the series of every exported cluster, each under its
// cluster's name.
func (s *federatedSource[P]) Snapshot() []coordinator.ClusterSeries {
	members := s.fan.Exported()
	out := make([]coordinator.ClusterSeries, 0, len(members))
	for _, m := range members {
		if se, ok := m.Part.series(); ok {
			out = append(out, coordinator.ClusterSeries{Cluster: m.Cluster.Name, Series: se})
		}
	}
	return out
}

// Warning names the first exported cluster with something left out or
// without a value, and the clusters not read yet.
func (s *federatedSource[P]) Warning() string {
	out, more := "", 0
	for _, m := range s.fan.Exported() {
		if w := m.Part.warning(); w == "" {
			continue
		} else if out == "" {
			out = "cluster " + m.Cluster.Name + ": " + w
		} else {
			more++
		}
	}
	if more > 0 {
		out += fmt.Sprintf(" (and %d more clusters)", more)
	}
	c := s.fan.Counts()
	switch {
	case c.Active+c.Failed+c.Pending == 0:
		out = join(out, fmt.Sprintf("the FederatedClusterAccess %s discovers no clusters (yet)", s.access))
	case c.Pending > 0:
		out = join(out, fmt.Sprintf("%d clusters are not read yet", c.Pending))
	}
	return out
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// Degraded makes the metric not Ready while some of its clusters cannot
// be read, or none has been read yet; the clusters read are exported.
func (s *federatedSource[P]) Degraded() error {
	if err := s.fan.Problem(); err != nil {
		return err
	}
	if c := s.fan.Counts(); c.Active == 0 && c.Pending > 0 {
		return reason.New(v1alpha1.ReasonPending, "waiting for the objects of %d clusters", c.Pending)
	}
	return nil
}

// observation counts the clusters by state, for status.observation.
func (s *federatedSource[P]) observation() v1alpha1.FederatedObservation {
	c := s.fan.Counts()
	return v1alpha1.FederatedObservation{ActiveCount: int32(c.Active), FailedCount: int32(c.Failed), PendingCount: int32(c.Pending)}
}

// evaluate tells the coordinator about the current series: an error when
// a limit is broken, a publish when publish is set (a cluster's state
// changed, or the set of clusters) or the metric comes back within its
// limits, else a change.
func (s *federatedSource[P]) evaluate(publish bool) {
	u := s.currentUpdate()
	if errp := s.broken.Load(); errp != nil {
		s.coord.SetError(u.Key, u.Generation, *errp)
		return
	}
	if err := s.limitErr(); err != nil {
		if !s.limited.Swap(true) || publish {
			s.coord.SetError(u.Key, u.Generation, err)
		}
		return
	}
	if s.limited.Swap(false) || publish {
		s.coord.Publish(u, true)
		return
	}
	s.coord.Changed(u.Key)
}

// limitErr returns why the metric is over its limits: a cluster's part
// over its own, or more series over all clusters than the metric may
// have.
func (s *federatedSource[P]) limitErr() error {
	total := 0
	for _, m := range s.fan.Exported() {
		n, err := m.Part.load()
		if err != nil {
			return err
		}
		total += n
	}
	if s.maxSeries > 0 && total > s.maxSeries {
		return reason.New(v1alpha1.ReasonSeriesLimitExceeded,
			"the metric has %d series over all clusters, more than %d, its limit (the lower of spec.maxSeries and the operator's --max-series-per-metric); "+
				"nothing is exported until it has fewer: group by fewer dimensions, or narrow the selectors", total, s.maxSeries)
	}
	return nil
}

// synced records that a cluster's part holds its current objects and
// tells the coordinator: a publish when the cluster was not exported
// before, else a change.
func (s *federatedSource[P]) synced(key string) { s.evaluate(s.fan.Synced(key)) }

// failed records why a cluster cannot be read and publishes when that
// changed what is exported or reported.
func (s *federatedSource[P]) failed(key string, err error) {
	if s.fan.Fail(key, err) {
		s.evaluate(true)
	}
}

// pollTimeout bounds one cluster's read in polling mode, so that a
// cluster that never answers frees its worker; the other clusters are
// read beside it and are not held up.
const pollTimeout = 30 * time.Second

// pollClusters reads every cluster of a polling metric once with read,
// up to probeParallelism clusters side by side, each bounded by the
// lower of the metric's interval and pollTimeout. read records the
// cluster's state on the FanOut (Synced, Fail) and reports whether that
// state changed and whether the cluster's series may have. The source is
// evaluated as each cluster finishes, so a cluster that answers is
// published without waiting for a slow one, and once more at the end:
// a poll is the metric's heartbeat. It reports whether a cluster was
// left for a retry because it had its share of reads in flight (busy).
// The clusters, all of one access, are read for one worker: they take one
// place of the access's namespace together (clusters.OneWorker).
func pollClusters[P federatedPart](ctx context.Context, s *federatedSource[P], interval time.Duration,
	read func(ctx context.Context, m federation.Member[P]) (stateChanged, seriesChanged bool)) (busy bool) {
	s.busy.Store(false)
	ctx, done := clusters.OneWorker(ctx)
	defer done()
	var wg sync.WaitGroup
	sem := make(chan struct{}, probeParallelism)
	for _, m := range s.fan.Members() {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, min(interval, pollTimeout))
			defer cancel()
			if state, series := read(cctx, m); state || series {
				s.evaluate(state)
			}
		})
	}
	wg.Wait()
	s.evaluate(true)
	return s.busy.Load()
}
