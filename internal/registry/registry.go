package registry

import (
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/internal/evaluation"
)

// InformerKey names one shared watch.
type InformerKey struct {
	Cluster string
	GVR     schema.GroupVersionResource
	// Namespace is the namespace watched; "" watches all.
	Namespace string
}

func (k InformerKey) String() string {
	ns := k.Namespace
	if ns == "" {
		ns = "*"
	}
	return k.Cluster + "/" + k.GVR.String() + "/" + ns
}

// LogValues are the structured log keys of the watch: cluster, resource
// and namespace ("" for all), the same in every component's lines.
func (k InformerKey) LogValues() []any {
	return []any{"cluster", k.Cluster, "resource", k.GVR.GroupResource().String(), "namespace", k.Namespace}
}

// Subscription is one metric's interest in one watch.
//
// The fields an event reads of every metric it changes (whether it is
// active, its lock and OnChange, its aggregate) come first, so that
// telling a metric that is cold in cache mostly costs one cache line.
type Subscription struct {
	// retired is set once Register replaced the subscription or
	// Unregister dropped it.
	retired atomic.Bool
	// disabled is set when evaluating the metric panicked: its aggregate
	// may be inconsistent, so no event, list or fill touches it again.
	disabled atomic.Bool
	synced   atomic.Bool
	// mu is held while a callback runs and when the subscription is
	// retired, so that once Register replaced it or Unregister dropped it
	// none of its callbacks runs any more: a LIST still running for a
	// deleted, renamed or switched metric cannot publish it again.
	mu sync.Mutex

	// OnChange is called after an event changed the aggregate.
	OnChange func()
	// Aggregate holds the metric's per-object contributions.
	Aggregate *evaluation.Aggregate
	// ID identifies the metric, for example "Metric/ns/name".
	ID string
	// Generation is the metric generation the subscription was built for.
	Generation int64
	// MetadataOnly is true when the metric reads nothing but metadata, so
	// a metadata-only watch serves it.
	MetadataOnly bool
	// OnSynced is called once the aggregate holds the current objects:
	// after the watch's initial list, or after the list made for a metric
	// joining a running watch.
	OnSynced func()
	// OnError is called when the watch fails for a reason the user must
	// fix (the resource is gone, access is forbidden).
	OnError func(error)
}

// epoch moves whenever some subscription's synced, retired or disabled
// state changes; see Epoch.
var epoch atomic.Uint64

// Epoch returns a number that moves whenever any subscription becomes
// synced or unsynced, is retired or disabled. The events handler keeps
// what it learnt of a group's subscriptions (all synced, active, reading
// one state) for as long as it stays put, instead of asking each
// subscription at every event.
func Epoch() uint64 { return epoch.Load() }

// Disable stops evaluating the metric after its evaluation panicked and
// tells it err, once. The subscription counts as synced, so no fill is
// made for it; a spec change registers a new one.
func (s *Subscription) Disable(err error) {
	if s.disabled.CompareAndSwap(false, true) {
		s.synced.Store(true)
		epoch.Add(1)
		s.report(err)
	}
}

// Active reports whether events should be applied to the subscription: it
// is still registered and its evaluation never panicked.
func (s *Subscription) Active() bool { return !s.retired.Load() && !s.disabled.Load() }

// MarkSynced records that the aggregate is filled and tells the metric,
// the first time only.
func (s *Subscription) MarkSynced() {
	if !s.synced.CompareAndSwap(false, true) {
		return
	}
	epoch.Add(1)
	if s.OnSynced != nil {
		s.call(s.OnSynced)
	}
}

// Unsync records that the watch failed: the next fill calls OnSynced
// again, which publishes the metric anew and clears its error.
func (s *Subscription) Unsync() {
	if s.synced.Swap(false) {
		epoch.Add(1)
	}
}

// Synced reports whether the aggregate was filled.
func (s *Subscription) Synced() bool { return s.synced.Load() }

// Changed tells the metric that an event changed its aggregate.
func (s *Subscription) Changed() {
	if s.OnChange != nil {
		s.call(s.OnChange)
	}
}

// Fail tells the metric why its watch cannot serve it; a disabled metric
// keeps reporting why it was disabled.
func (s *Subscription) Fail(err error) {
	if !s.disabled.Load() {
		s.report(err)
	}
}

func (s *Subscription) report(err error) {
	if s.OnError != nil {
		s.call(func() { s.OnError(err) })
	}
}

// Live reports whether the subscription is still registered: replaced
// and dropped subscriptions need no more objects.
func (s *Subscription) Live() bool { return !s.retired.Load() }

// call runs f unless the subscription is retired, holding mu so that
// retire waits for it.
func (s *Subscription) call(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.retired.Load() {
		f()
	}
}

// retire ends the subscription's callbacks, waiting for a running one.
func (s *Subscription) retire() {
	s.mu.Lock()
	s.retired.Store(true)
	epoch.Add(1)
	s.mu.Unlock()
}

// Registry maps watches to subscriptions. It is safe for concurrent use.
type Registry struct {
	mu    sync.Mutex
	byKey map[InformerKey]map[string]*Subscription
	byID  map[string]InformerKey
	// snapshots hold, per key, the subscriptions as an immutable slice,
	// replaced on every change, for lock-free reads on the event path.
	snapshots sync.Map // InformerKey -> *snapshot
	// watches hold, per key with subscriptions, what outlives snapshots.
	watches map[InformerKey]*watch
}

// snapshot is one key's subscriptions and, built when first asked for,
// their Index.
type snapshot struct {
	subs  []*Subscription
	watch *watch
	once  sync.Once
	index *Index
}

// watch is what the registry keeps for a key while it has subscriptions.
type watch struct {
	ids      groupIDs
	stateMu  sync.Mutex
	state    any
	hasState bool
}

// New returns an empty Registry.
func New() *Registry {
	return &Registry{byKey: map[InformerKey]map[string]*Subscription{}, byID: map[string]InformerKey{},
		watches: map[InformerKey]*watch{}}
}

// Register subscribes sub to key, replacing (and retiring) the metric's
// previous subscription. When the metric was subscribed to another key, that key is
// returned with moved true, so the caller can release its watch.
func (r *Registry) Register(key InformerKey, sub *Subscription) (previous InformerKey, moved bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.byID[sub.ID]; ok && old != key {
		r.removeLocked(old, sub.ID)
		previous, moved = old, true
	}
	subs := r.byKey[key]
	if subs == nil {
		subs = map[string]*Subscription{}
		r.byKey[key] = subs
	}
	if old := subs[sub.ID]; old != nil && old != sub {
		old.retire()
	}
	subs[sub.ID] = sub
	r.byID[sub.ID] = key
	r.publishLocked(key)
	return previous, moved
}

// Unregister drops (and retires) the metric's subscription and returns its
// key. When it returns, no callback of that subscription runs or will.
func (r *Registry) Unregister(id string) (InformerKey, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key, ok := r.byID[id]
	if ok {
		r.removeLocked(key, id)
	}
	return key, ok
}

// Lookup returns the metric's subscription and its key.
func (r *Registry) Lookup(id string) (InformerKey, *Subscription, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key, ok := r.byID[id]
	if !ok {
		return InformerKey{}, nil, false
	}
	return key, r.byKey[key][id], true
}

// UnlessRegistered runs f unless the metric id holds a subscription, and
// reports whether it ran. Register waits for f, so a metric's polling
// producer can publish through f without overtaking (or being overtaken
// by) an event-driven subscription of the same metric.
func (r *Registry) UnlessRegistered(id string, f func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byID[id]; ok {
		return false
	}
	f()
	return true
}

// Interested returns the subscriptions of key. The slice is shared and
// must not be modified.
func (r *Registry) Interested(key InformerKey) []*Subscription {
	if p, ok := r.snapshots.Load(key); ok {
		return p.(*snapshot).subs
	}
	return nil
}

// Index returns the Index of key's subscriptions (nil when it has none):
// the same subscriptions as Interested, grouped and indexed. It is built
// once per change of the subscriptions, by the first caller after it.
func (r *Registry) Index(key InformerKey) *Index {
	p, ok := r.snapshots.Load(key)
	if !ok {
		return nil
	}
	sn := p.(*snapshot)
	sn.once.Do(func() { sn.index = buildIndex(sn.subs, &sn.watch.ids) })
	return sn.index
}

// WatchState returns the value kept for key while it has subscriptions,
// made by mk on first use; nil when key has none. The events handler
// keeps its per-object bookkeeping of a watch there, so that it goes when
// the watch's last metric does.
func (r *Registry) WatchState(key InformerKey, mk func() any) any {
	p, ok := r.snapshots.Load(key)
	if !ok {
		return nil
	}
	w := p.(*snapshot).watch
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	if !w.hasState {
		w.state, w.hasState = mk(), true
	}
	return w.state
}

// NeedsFullObjects reports whether any subscription of key reads more than
// metadata.
func (r *Registry) NeedsFullObjects(key InformerKey) bool {
	for _, s := range r.Interested(key) {
		if !s.MetadataOnly {
			return true
		}
	}
	return false
}

func (r *Registry) removeLocked(key InformerKey, id string) {
	delete(r.byID, id)
	if subs := r.byKey[key]; subs != nil {
		if s := subs[id]; s != nil {
			s.retire()
		}
		delete(subs, id)
		if len(subs) == 0 {
			delete(r.byKey, key)
		}
	}
	r.publishLocked(key)
}

func (r *Registry) publishLocked(key InformerKey) {
	subs := r.byKey[key]
	if len(subs) == 0 {
		r.snapshots.Delete(key)
		delete(r.watches, key)
		return
	}
	list := make([]*Subscription, 0, len(subs))
	for _, s := range subs {
		list = append(list, s)
	}
	w := r.watches[key]
	if w == nil {
		w = &watch{ids: groupIDs{ids: map[string]uint32{}}}
		r.watches[key] = w
	}
	r.snapshots.Store(key, &snapshot{subs: list, watch: w})
}
