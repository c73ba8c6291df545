package sharding

import (
	"slices"
	"sync"

	ctrl "sigs.k8s.io/controller-runtime"
)

// Shard is one replica's share of the metrics: which keys it may serve
// now, given its view of the members and what the other members have
// acknowledged. Reconcilers ask Hold before they serve a key and call
// Release once they have dropped it; Membership feeds it the member view.
// All methods are safe for concurrent use.
type Shard struct {
	self string

	mu      sync.Mutex
	view    []string // live members, sorted
	hash    string   // viewHash(view)
	member  bool     // self renewed its Lease recently enough to serve
	settled bool     // every member of view applied view
	// othersAcked is whether every other member of view acknowledged it.
	othersAcked bool
	// lastSettled is the last view that was settled, while this replica
	// has been a member ever since (nil after it was not). lost is
	// lastSettled when the current view is it less some members, nil
	// otherwise: their keys are claimed at once (see grantsLocked).
	lastSettled, lost []string
	applied           string // the view whose releases this replica has completed
	// holds are the holders (reconcilers) of each key that may serve it.
	holds map[string]map[string]struct{}
	// draining are the keys one holder dropped while others still hold
	// them. The holders of a key share what they serve it with (the
	// coordinator's entry of a Metric is published by one reconciler and
	// removed by either), so once one has dropped a key the others must
	// drop it too before any serves it again: one that kept its hold
	// through a view that took the key away and gave it back would go on
	// as if it still served the key, which nobody does.
	draining map[string]struct{}
	// pending are the holds (holder, key) of keys the current view gives
	// to another member, not released yet.
	pending map[hold]struct{}
	subs    []func(string)
	// warm is whether holders prepare the keys this replica may have to
	// serve soon (StandBy). stood are the holds StandBy last answered
	// yes to, and standbyHolders the holders that ask it: Stale names a
	// key to them when its answer changes.
	warm           bool
	stood          map[hold]struct{}
	standbyHolders map[string]struct{}
	// applyChanged is called (outside the lock) when applied changes, so
	// that the Lease carries the acknowledgement soon.
	applyChanged func()
}

type hold struct{ holder, key string }

// viewLog records the changes of view and settledness, the steps of every
// handover.
var viewLog = ctrl.Log.WithName("sharding")

// NewShard returns the shard of the member named self. It holds nothing
// and serves nothing until Update makes it a member of a settled view.
func NewShard(self string) *Shard {
	return &Shard{self: self, holds: map[string]map[string]struct{}{}, draining: map[string]struct{}{},
		pending: map[hold]struct{}{}, stood: map[hold]struct{}{}, standbyHolders: map[string]struct{}{}}
}

// EnableWarmStandby makes StandBy name the keys this replica may have to
// serve next, so that their holders prepare them; without it StandBy
// names none.
func (s *Shard) EnableWarmStandby() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.warm = true
}

// Self is this replica's member name.
func (s *Shard) Self() string { return s.self }

// Hold reports whether this replica serves key, and records that holder
// does so until Release. A key is served when this replica is a member,
// owns the key in its current view, no holder is still dropping it, and
// either it already serves it (its ownership is unchanged, so no other
// member can claim it) or the view is settled (every member of it has
// dropped what the view takes from it).
func (s *Shard) Hold(holder, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.grantsLocked(key) {
		return false
	}
	hs := s.holds[key]
	if hs == nil {
		hs = map[string]struct{}{}
		s.holds[key] = hs
	}
	hs[holder] = struct{}{}
	delete(s.stood, hold{holder, key})
	s.countLocked()
	return true
}

// StandBy reports whether holder should keep key ready to serve without
// serving it (compiled, its objects aggregated, nothing published, pushed
// or written), because this replica may have to serve it next: it is
// the key's runner-up, which takes the key over at once when its owner is
// lost, or it owns the key and waits for the view to settle before it may
// serve it. Once Hold grants the key, the holder publishes what it has
// prepared instead of building it then. A holder that held key must
// Release it all the same, whether or not it published anything: the
// view is acknowledged only once it has. It records the answer, so that
// Stale names key to holder when it changes. Without EnableWarmStandby
// it is always false.
func (s *Shard) StandBy(holder, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.warm {
		return false
	}
	s.standbyHolders[holder] = struct{}{}
	h := hold{holder, key}
	if !s.standbyLocked(key) {
		delete(s.stood, h)
		return false
	}
	s.stood[h] = struct{}{}
	return true
}

// standbyLocked reports whether StandBy says yes to key: this replica is a
// member, may not serve key now, and owns it or is its runner-up.
func (s *Shard) standbyLocked(key string) bool {
	if !s.warm || !s.member || s.grantsLocked(key) {
		return false
	}
	first, second := ranked(key, s.view)
	return first == s.self || second == s.self
}

// Stale reports whether holder must look at key again: Hold would answer
// otherwise than what holder recorded last (it holds a key the view takes
// away, or holds not a key it may serve now), or, for a holder that asks
// StandBy, StandBy would. After a change of view only the stale keys need
// a reconcile; with thousands of metrics, the others would only queue in
// front of them.
func (s *Shard) Stale(holder, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.staleLocked(holder, key)
}

// StaleKeys returns the keys of keys that are Stale for holder, under one
// acquisition of the lock: a change of view has every holder look at
// thousands of keys, and one acquisition each, against the holds of
// reconcilers and the claims of a takeover, handed the lock from one
// waiter to the next for seconds on a loaded machine.
func (s *Shard) StaleKeys(holder string, keys []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var stale []string
	for _, key := range keys {
		if s.staleLocked(holder, key) {
			stale = append(stale, key)
		}
	}
	return stale
}

// Granted returns the keys of keys that Hold would grant now, under one
// acquisition of the lock.
func (s *Shard) Granted(keys []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var granted []string
	for _, key := range keys {
		if s.grantsLocked(key) {
			granted = append(granted, key)
		}
	}
	return granted
}

func (s *Shard) staleLocked(holder, key string) bool {
	_, held := s.holds[key][holder]
	if held != s.grantsLocked(key) {
		return true
	}
	if _, asks := s.standbyHolders[holder]; asks {
		_, stood := s.stood[hold{holder, key}]
		return stood != s.standbyLocked(key)
	}
	return false
}

// Release records that holder no longer serves key. Once every key the
// current view takes away is released, the replica acknowledges the view.
// A key one holder releases while the view does not give it to this
// replica, and others still hold it, is drained: the others must release
// it too (Stale names it to them, Hold refuses it) before any holder may
// hold it again, even if the view gives it back meanwhile. A key released
// while this replica owns it (its object is gone) is not: its holders
// each learn that from the object, and draining it would send it back to
// them once all had released it, and again, for as long as their
// reconciles of it overlapped.
func (s *Shard) Release(holder, key string) {
	s.mu.Lock()
	// look is a key whose holders must take it anew: drained while the
	// view gave it back, it would not be sent by a change of view.
	look := ""
	if hs, ok := s.holds[key]; ok {
		_, held := hs[holder]
		delete(hs, holder)
		_, wasDraining := s.draining[key]
		switch {
		case len(hs) == 0:
			delete(s.holds, key)
			delete(s.draining, key)
			if wasDraining && s.grantsLocked(key) {
				look = key
			}
		case held && !wasDraining && !s.ownsLocked(key):
			s.draining[key] = struct{}{}
		}
	}
	delete(s.pending, hold{holder, key})
	s.countLocked()
	notify, ack := s.settleLocked()
	if notify {
		s.logLocked()
	}
	s.mu.Unlock()
	s.after(notify, ack)
	if look != "" && !notify {
		s.notify(look)
	}
}

// countLocked sets the owned-metrics gauge: the keys this replica serves,
// held and not being dropped.
func (s *Shard) countLocked() {
	ownedMetrics.Set(float64(len(s.holds) - len(s.draining)))
}

// Served returns how many keys this replica serves: held, and not being
// dropped by any of their holders.
func (s *Shard) Served() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.holds) - len(s.draining)
}

func (s *Shard) logLocked() {
	viewLog.Info("Shard view changed", "members", len(s.view), "member", s.member, "settled", s.settled,
		"toRelease", len(s.pending), "held", len(s.holds), "draining", len(s.draining))
}

// Leads reports whether this replica should do the singular work for key
// that is not serving a metric, such as writing a DataSink's status: its
// owner in the current view, settled or not. Two replicas may both lead
// a key for a moment while views change; that is meant for idempotent
// work only.
func (s *Shard) Leads(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ownsLocked(key)
}

// Subscribe registers f to be called whenever what Hold answers may have
// changed: with "" when it may have for any key (the view, membership, or
// the view becoming settled), so that every key is looked at again; with
// a key when only that key's holders must look at it (one of them dropped
// it, or all have and it may be served again). f must not block.
func (s *Shard) Subscribe(f func(string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, f)
}

// Applied returns the view hash this replica has completed the releases
// of, which its Lease announces to the others.
func (s *Shard) Applied() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// Status returns the current view and whether this replica is a member
// and the view settled.
func (s *Shard) Status() (view []string, member, settled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.view), s.member, s.settled
}

// Update sets the view: the live members (self among them when its own
// Lease is live), whether self may serve (its Lease renewed within the
// fencing deadline), and the view each other member last acknowledged.
func (s *Shard) Update(members []string, member bool, acks map[string]string) {
	members = slices.Clone(members)
	slices.Sort(members)
	members = slices.Compact(members)
	if !member {
		// A replica that may not serve is no member of its own view.
		members = slices.DeleteFunc(members, func(m string) bool { return m == s.self })
	}
	h := viewHash(members)
	s.mu.Lock()
	changed := h != s.hash || member != s.member
	s.view, s.hash, s.member = members, h, member
	if !member {
		s.lastSettled = nil
	}
	s.lost = nil
	if member && s.lastSettled != nil && len(members) < len(s.lastSettled) &&
		!slices.ContainsFunc(members, func(m string) bool { return !slices.Contains(s.lastSettled, m) }) {
		s.lost = s.lastSettled
	}
	if changed {
		clear(s.pending)
		for key, hs := range s.holds {
			if !s.ownsLocked(key) {
				for holder := range hs {
					s.pending[hold{holder, key}] = struct{}{}
				}
			}
		}
	}
	s.othersAcked = true
	for _, m := range members {
		if m != s.self && acks[m] != h {
			s.othersAcked = false
		}
	}
	shardMembers.Set(float64(len(members)))
	settledChanged, ack := s.settleLocked()
	if changed || settledChanged {
		s.logLocked()
	}
	s.mu.Unlock()
	s.after(changed || settledChanged, ack)
}

// settleLocked acknowledges the view once no release is pending, and
// recomputes whether the view is settled.
func (s *Shard) settleLocked() (settledChanged, ack bool) {
	if len(s.pending) == 0 && s.applied != s.hash {
		s.applied, ack = s.hash, true
	}
	settled := s.member && s.othersAcked && s.applied == s.hash
	settledChanged, s.settled = settled != s.settled, settled
	if settled {
		s.lastSettled, s.lost = s.view, nil
	}
	return settledChanged, ack
}

func (s *Shard) after(notify, ack bool) {
	if ack && s.applyChanged != nil {
		s.applyChanged()
	}
	if notify {
		s.notify("")
	}
}

// notify calls the subscribers with key ("": every key).
func (s *Shard) notify(key string) {
	s.mu.Lock()
	subs := slices.Clone(s.subs)
	s.mu.Unlock()
	for _, f := range subs {
		f(key)
	}
}

// grantsLocked reports whether Hold serves key: this replica owns it, no
// holder is dropping it, and it serves it already or the view is settled
// or the key was a lost member's.
//
// A key whose owner in the last settled view is gone from the current one
// (killed, or fenced: it stopped serving before anyone counted it gone) is
// claimed at once, without waiting for the others to acknowledge the view:
// nobody else can hold it. In that settled view only its owner held it
// (every other member had dropped it to acknowledge the view); since then
// another member could claim it only by owning it in a view of its own,
// which this replica outranks on the key while it is in that view, and
// this replica has been in every view of the others while it was a
// member (it was, continuously, or lastSettled would be nil); a member
// that joined since claims nothing before this replica acknowledges a
// view with it, and this replica's view has no one new. It saves the
// round of acknowledgements (a Lease write and its delivery to every
// member, 0.2-0.6 s under load) between a killed replica's Lease expiring
// and its metrics being served.
func (s *Shard) grantsLocked(key string) bool {
	if _, draining := s.draining[key]; draining {
		return false
	}
	if !s.ownsLocked(key) {
		return false
	}
	if s.settled || len(s.holds[key]) > 0 {
		return true
	}
	return s.lost != nil && !slices.Contains(s.view, Owner(key, s.lost))
}

// ownsLocked reports whether the current view gives key to this replica.
func (s *Shard) ownsLocked(key string) bool {
	return s.member && Owner(key, s.view) == s.self
}
