package federation

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

// State is where one cluster of a federated metric stands.
type State int

const (
	// Pending is a cluster connecting, or whose objects are not read yet.
	Pending State = iota
	// Active is a cluster whose objects are read and series exported.
	Active
	// Failed is a cluster that cannot be read now (unreachable,
	// forbidden, kind not served); see Member.Err.
	Failed
)

func (s State) String() string {
	switch s {
	case Active:
		return "Active"
	case Failed:
		return "Failed"
	}
	return "Pending"
}

// Member is one cluster of a FanOut and its part.
type Member[P any] struct {
	Cluster Cluster
	Part    P
	State   State
	// Err is why a Failed cluster cannot be read.
	Err error
}

// Counts are the clusters of a FanOut by state: what a federated metric's
// status.observation reports.
type Counts struct {
	Active, Failed, Pending int
}

// FanOut spreads one federated metric over the clusters of its
// FederatedClusterAccess: it holds one part per member cluster (for a
// FederatedMetric, the cluster's aggregate and its registration on that
// cluster's shared watch) and where each cluster stands.
//
// The caller makes the parts follow the access's clusters with Sync (a
// cluster that appears gets a part, one that goes has its part stopped),
// and reports what each part learns with Synced and Fail. Exported
// returns the parts whose series are exported: the Active clusters, and
// the clusters that became unreachable less than the grace period ago,
// which keep their last series so that a short outage leaves no gap. When
// a grace period runs out, expired is called so that the caller exports
// the metric again without that cluster. Any other failure (forbidden,
// kind not served) withdraws the cluster's series at once, as it would
// withdraw a Metric's. The other clusters are never held up by one that
// fails: each part is read on its own.
//
// A FanOut belongs to one generation of one metric; a new spec gets a new
// FanOut and the old one is closed. Safe for concurrent use.
type FanOut[P any] struct {
	grace   time.Duration
	expired func()
	now     func() time.Time

	mu      sync.Mutex
	members map[string]*member[P]
	closed  bool
}

type member[P any] struct {
	Member[P]
	// keepUntil is when a failed cluster's series stop being exported.
	keepUntil time.Time
	timer     *time.Timer
	// said is what the member last told clusterHealth.
	said opinion
}

// say tells clusterHealth what the member now says about its cluster.
func (m *member[P]) say(o opinion) {
	clusterHealth.move(m.Cluster.Name, m.said, o)
	m.said = o
}

// NewFanOut returns a FanOut with no clusters. grace is how long an
// unreachable cluster's series stay exported; expired, if not nil, is
// called (from a timer, without locks held) when a grace period ends.
func NewFanOut[P any](grace time.Duration, expired func()) *FanOut[P] {
	return &FanOut[P]{grace: grace, expired: expired, now: time.Now, members: map[string]*member[P]{}}
}

// Sync makes the members follow clusters: a cluster not held yet gets a
// Pending member with the part start returns; a member whose cluster is
// gone, or was renamed, has stop called with its part, and a renamed
// cluster gets a new part. start and stop are called without locks held,
// so they may call the FanOut. It reports whether the members changed.
func (f *FanOut[P]) Sync(clusters []Cluster, start func(Cluster) P, stop func(Cluster, P)) (changed bool) {
	want := make(map[string]Cluster, len(clusters))
	for _, c := range clusters {
		want[c.Key] = c
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return false
	}
	var gone []*member[P]
	for k, m := range f.members {
		if c, ok := want[k]; !ok || c != m.Cluster {
			m.stopTimer()
			m.say(noOpinion)
			delete(f.members, k)
			gone = append(gone, m)
		}
	}
	var added []*member[P]
	for _, c := range clusters {
		if _, ok := f.members[c.Key]; !ok {
			m := &member[P]{Member: Member[P]{Cluster: c}}
			f.members[c.Key] = m
			added = append(added, m)
		}
	}
	f.mu.Unlock()
	for _, m := range gone {
		stop(m.Cluster, m.Part)
	}
	for _, m := range added {
		p := start(m.Cluster)
		f.mu.Lock()
		m.Part = p
		f.mu.Unlock()
	}
	return len(gone) > 0 || len(added) > 0
}

// Synced records that the cluster key's part holds its current objects.
// It reports whether the cluster's state changed.
func (f *FanOut[P]) Synced(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.members[key]
	if m == nil || m.State == Active {
		return false
	}
	m.stopTimer()
	m.State, m.Err, m.keepUntil = Active, nil, time.Time{}
	m.say(up)
	return true
}

// Restart records that the cluster key's part starts reading afresh (it
// was rebuilt): Pending, exporting nothing until Synced.
func (f *FanOut[P]) Restart(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.members[key]; m != nil {
		m.stopTimer()
		m.State, m.Err, m.keepUntil = Pending, nil, time.Time{}
		m.say(noOpinion)
	}
}

// Fail records why the cluster key cannot be read. An Active cluster that
// became unreachable (reason ClusterUnreachable) keeps its last series
// for the grace period, counted from its first failure; any other
// failure withdraws them at once. It reports whether the cluster's state,
// reason or exported series changed.
func (f *FanOut[P]) Fail(key string, err error) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.members[key]
	if m == nil || f.closed {
		return false
	}
	unreachable := reason.Of(err, v1alpha1.ReasonClusterUnreachable) == v1alpha1.ReasonClusterUnreachable
	if unreachable {
		m.say(down)
	} else {
		m.say(noOpinion)
	}
	if m.State == Failed {
		same := reason.Of(m.Err, "") == reason.Of(err, "") && m.Err.Error() == err.Error()
		m.Err = err
		if !unreachable && !m.keepUntil.IsZero() {
			m.stopTimer()
			m.keepUntil = time.Time{}
			return true
		}
		return !same
	}
	wasActive := m.State == Active
	m.State, m.Err = Failed, err
	if unreachable && wasActive && f.grace > 0 {
		m.keepUntil = f.now().Add(f.grace)
		m.timer = time.AfterFunc(f.grace, f.expire)
	}
	return true
}

// expire is a grace period's timer.
func (f *FanOut[P]) expire() {
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if !closed && f.expired != nil {
		f.expired()
	}
}

func (m *member[P]) stopTimer() {
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
}

// Part returns the part of the cluster key.
func (f *FanOut[P]) Part(key string) (P, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.members[key]; m != nil {
		return m.Part, true
	}
	var zero P
	return zero, false
}

// Members returns every member, sorted by cluster name.
func (f *FanOut[P]) Members() []Member[P] {
	return f.list(func(*member[P], time.Time) bool { return true })
}

// Exported returns the members whose series are exported, sorted by
// cluster name: the Active ones, and the unreachable ones within their
// grace period.
func (f *FanOut[P]) Exported() []Member[P] {
	return f.list(func(m *member[P], now time.Time) bool {
		return m.State == Active || m.State == Failed && now.Before(m.keepUntil)
	})
}

func (f *FanOut[P]) list(keep func(*member[P], time.Time) bool) []Member[P] {
	now := f.now()
	f.mu.Lock()
	out := make([]Member[P], 0, len(f.members))
	for _, m := range f.members {
		if keep(m, now) {
			out = append(out, m.Member)
		}
	}
	f.mu.Unlock()
	slices.SortFunc(out, func(a, b Member[P]) int {
		return cmp.Or(cmp.Compare(a.Cluster.Name, b.Cluster.Name), cmp.Compare(a.Cluster.Key, b.Cluster.Key))
	})
	return out
}

// Counts counts the members by state.
func (f *FanOut[P]) Counts() Counts {
	f.mu.Lock()
	defer f.mu.Unlock()
	var c Counts
	for _, m := range f.members {
		switch m.State {
		case Active:
			c.Active++
		case Failed:
			c.Failed++
		default:
			c.Pending++
		}
	}
	return c
}

// Problem summarises the failed clusters for the metric's Ready
// condition: nil when none failed, else an error with the reason of the
// first failed cluster (by name) that counts the failed clusters, names
// at most three with their reasons, and says why the first failed.
func (f *FanOut[P]) Problem() error {
	var failed []Member[P]
	all := f.Members()
	for _, m := range all {
		if m.State == Failed {
			failed = append(failed, m)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	names := make([]string, 0, min(len(failed), 3))
	for _, m := range failed[:min(len(failed), 3)] {
		names = append(names, m.Cluster.Name+" ("+reason.Of(m.Err, v1alpha1.ReasonClusterUnreachable)+")")
	}
	list := strings.Join(names, ", ")
	if len(failed) > 3 {
		list += fmt.Sprintf(" and %d more", len(failed)-3)
	}
	first := failed[0]
	msg := fmt.Sprintf("%d of %d clusters cannot be read: %s; their series are left out", len(failed), len(all), list)
	if f.grace > 0 {
		msg += fmt.Sprintf(" (after %s when unreachable)", f.grace)
	}
	msg += fmt.Sprintf(" and the other clusters are exported. Cluster %s: %s", first.Cluster.Name, first.Err.Error())
	return reason.New(reason.Of(first.Err, v1alpha1.ReasonClusterUnreachable), "%s", msg)
}

// Close stops every part with stop and the grace timers; a closed FanOut
// holds nothing and ignores what it is told.
func (f *FanOut[P]) Close(stop func(Cluster, P)) {
	f.mu.Lock()
	members := f.members
	f.members, f.closed = map[string]*member[P]{}, true
	for _, m := range members {
		m.stopTimer()
		m.say(noOpinion)
	}
	f.mu.Unlock()
	for _, m := range members {
		stop(m.Cluster, m.Part)
	}
}
