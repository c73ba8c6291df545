package controllers

import (
	"context"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/registry"
)

// standbyGate gates what an event-driven Metric's subscription tells the
// coordinator. A metric this replica keeps ready for a takeover
// (Shard.StandBy) is compiled and registered, and its watch aggregates
// its objects, but it is not published, pushed, or given a status until
// the shard lets this replica serve it (promote): then it is published
// at once with the objects it already holds, where registering it only
// then took the reconcile, compile and LIST of every metric taken over
// (0.5-3 s for 500 metrics at 3,000 on a loaded machine, on top of the
// lease). A metric this replica stops serving but keeps ready is demoted
// the same way, without registering it anew (a LIST of its objects for
// every metric a joining replica takes from this one).
type standbyGate struct {
	key    coordinator.Key
	gen    int64
	sub    *registry.Subscription
	limits *limitReporter
	coord  *coordinator.Coordinator

	// waiting is set while the metric stands by: its callbacks publish
	// and report nothing.
	waiting atomic.Bool
	// mu orders promote, demote, drop and the callbacks' look at waiting
	// with what they then tell the coordinator: a metric demoted or
	// dropped (and removed from the coordinator) is never published
	// afterwards by a callback that looked before, and no error of its
	// watch is lost. The event path (changed) only reads.
	mu      sync.RWMutex
	dropped bool
	// failure is the last error its watch reported while it waited; a
	// later fill clears it.
	failure error
}

// synced is the subscription's OnSynced.
func (s *standbyGate) synced() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting.Load() {
		s.failure = nil
		return
	}
	s.limits.synced()
}

// changed is the subscription's OnChange.
func (s *standbyGate) changed() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.waiting.Load() {
		s.limits.changed()
	}
}

// failed is the subscription's OnError.
func (s *standbyGate) failed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting.Load() {
		s.failure = err
		return
	}
	s.coord.SetError(s.key, s.gen, err)
}

// promote publishes the metric kept ready when hold (the shard's Hold)
// lets this replica serve it, and reports whether it did. A metric not
// synced yet is published by its OnSynced.
func (s *standbyGate) promote(hold func() bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropped || !s.waiting.Load() || !hold() {
		return false
	}
	s.waiting.Store(false)
	switch {
	case s.failure != nil:
		s.coord.SetError(s.key, s.gen, s.failure)
	case s.sub.Synced():
		s.limits.synced()
	}
	return true
}

// demote makes a published metric stand by: once it returns, its
// callbacks tell the coordinator nothing more, and the caller removes
// what they told it before.
func (s *standbyGate) demote() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting.Store(true)
	s.failure = nil
}

// drop ends promotion: the metric is being dropped.
func (s *standbyGate) drop() {
	s.mu.Lock()
	s.dropped = true
	s.mu.Unlock()
}

// keyLocks serialize a Metric's reconcile and its promotion, so that a
// promotion never publishes a registration the reconcile is replacing.
// Many stripes: a promotion waits for every reconcile it meets (with 64,
// the rechecks running at a takeover held it up for a second on a loaded
// machine).
type keyLocks [1024]sync.Mutex

// of is key's stripe.
func (l *keyLocks) of(key coordinator.Key) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key.String()))
	return &l[h.Sum32()%uint32(len(l))]
}

// lock locks key's stripe and returns its unlock.
func (l *keyLocks) lock(key coordinator.Key) func() {
	mu := l.of(key)
	mu.Lock()
	return mu.Unlock
}

// demote makes key's registration, if any, stand by.
func (r *EventDrivenReconciler) demote(key coordinator.Key) {
	if g, ok := r.gates.Load(key); ok {
		g.(*standbyGate).demote()
	}
}

// promote publishes key if it stands by; the reconcile holds the key
// already.
func (r *EventDrivenReconciler) promote(ctx context.Context, key coordinator.Key) {
	if g, ok := r.gates.Load(key); ok && g.(*standbyGate).promote(func() bool { return true }) {
		ctrl.LoggerFrom(ctx).Info("Metric kept ready is served", "metric", key.String())
	}
}

// promoteReady publishes every metric kept ready that this replica may
// serve now, at once, without waiting for their reconciles: a lost
// member's metrics are served as soon as its Lease expires. The shard
// source calls it at every change of view, before it enqueues the
// reconciles of the change, which find these registered and published.
func (r *EventDrivenReconciler) promoteReady() {
	start, n := time.Now(), 0
	// The keys granted now, asked at once: one lock of the shard rather
	// than one for each of the thousands kept ready.
	var waiting []string
	keys := map[string]coordinator.Key{}
	r.gates.Range(func(k, g any) bool {
		if g.(*standbyGate).waiting.Load() {
			key := k.(coordinator.Key)
			waiting = append(waiting, key.String())
			keys[key.String()] = key
		}
		return true
	})
	granted := r.Shard.Granted(waiting)
	asked := time.Since(start)
	// Where the time goes: waiting for reconciles of the same stripe,
	// for the shard's holds, and publishing.
	var blocked, holding, publishing time.Duration
	promote := func(k string) {
		// Its reconcile may have replaced or dropped it meanwhile.
		g, ok := r.gates.Load(keys[k])
		if !ok {
			return
		}
		before := time.Now()
		var held time.Time
		if g.(*standbyGate).promote(func() bool { ok := r.Shard.Hold(eventsHolder, k); held = time.Now(); return ok }) {
			n++
			holding += held.Sub(before)
			publishing += time.Since(held)
		}
	}
	// Keys whose reconcile runs now wait until the others are served.
	var busy []string
	for _, k := range granted {
		if mu := r.keys.of(keys[k]); mu.TryLock() {
			promote(k)
			mu.Unlock()
		} else {
			busy = append(busy, k)
		}
	}
	for _, k := range busy {
		before := time.Now()
		unlock := r.keys.lock(keys[k])
		blocked += time.Since(before)
		promote(k)
		unlock()
	}
	if n > 0 {
		ctrl.Log.WithName("eventdriven").Info("Metrics kept ready are served", "metrics", n,
			"duration", time.Since(start).String(), "asked", asked.String(), "busy", len(busy), "blocked", blocked.String(),
			"holding", holding.String(), "publishing", publishing.String())
	}
}
