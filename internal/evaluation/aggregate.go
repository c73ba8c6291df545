package evaluation

import (
	"math"
	"math/big"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

// Series is one series of a metric: the objects sharing the same
// dimension values, and their aggregated value.
type Series struct {
	// Dimensions in projection order; a projection whose path was missing
	// or null without a default is absent. Shared between snapshots: do not
	// modify (appending is fine, the slice has no spare capacity).
	Dimensions []Dimension
	// Value is the number of objects without valueFrom, else the
	// aggregation of their values.
	Value int64
}

// Aggregate is the incremental state of one metric: per object UID it
// keeps only what the object contributes (its series and value), never the
// object. Upsert and Delete serve the event-driven path, Replace the
// polling path; for the same objects they yield the same Series. It is
// safe for concurrent use.
//
// An aggregate made with Limits goes over them as soon as a new series
// would break one: it then drops everything, has no series, reports the
// reason through Err and ignores objects until the next Replace.
//
// The per-object state lives in a Shared, which aggregates of identical
// specs on one watch may share (see Attach): each Aggregate is then one
// metric's view of it, with its own limits, error and budget share.
type Aggregate struct {
	e        *Evaluator
	shareKey string
	limits   Limits

	// core is the state the aggregate reads; it changes only while the
	// old core's mu is held (see lock), when the aggregate attaches to
	// another core or leaves a shared one.
	core atomic.Pointer[Shared]

	// Guarded by core's mu.
	limitErr error // set while over the limits
	// limited mirrors limitErr != nil for Err, which the event path asks
	// of every metric it changes: most never go over their limits, and
	// need not take the state's lock to say so.
	limited   atomic.Bool
	limitedAt time.Time // when limitErr was set
	closed    bool      // after Close: ignore everything
	fresh     bool      // never given objects nor attached: may Attach
	held      int       // series taken from the budget
	// base makes Version go on from where it was when the aggregate moves
	// to another core: Version is base + core.changes. Written before
	// core is stored, under the old core's mu.
	base uint64
}

// Shared is the per-object state of one compiled spec on one watch: the
// objects' entries and the series. Aggregates of identical specs share
// one (Attach); each holds its own limits. Upsert, Delete and BeginReplace
// change it for every aggregate attached, and report one changed for all
// of them: an aggregate attached when the call began saw its series change
// (or went over its limits, which also drops its series) exactly when
// changed is true.
type Shared struct {
	e *Evaluator

	mu    sync.Mutex
	views []*Aggregate // attached aggregates
	live  int          // attached aggregates neither closed nor over their limits
	// keys interns the objects' UIDs: the watch's table on the event path
	// (see bind), the state's own otherwise (a table shared by states no
	// watch owns would outlive those dropped without Close). Each entry
	// holds a reference.
	keys    *Keys
	entries entryStore               // every matching object
	series  map[string]*series       // by series key; only series with objects
	errs    map[ObjectID]*valueError // objects with a value error
	lastErr ObjectID                 // the latest value error, while errs has it
	buf     []byte                   // scratch for series keys
	sorted  []*series                // series in Series order, nil when stale
	// changes counts the changes of the series (what Series returns):
	// each Upsert, Delete or Replace that reported changed, and going over
	// the limits. Aggregate.Version reads it.
	changes uint64
	// polled is what the last Poll kept of its objects, which it does not
	// hold (see Aggregate.Poll).
	polled pollSummary
}

// series holds what is needed to aggregate under adds and removes.
type series struct {
	key  string
	slot uint32 // in the state's entryStore, while it has objects
	dims []Dimension
	n    int64  // objects
	sum  int128 // sum, mean
	// counts is the multiset of values, for max and min: removing the
	// current extreme makes ext stale, and it is found again on read.
	counts map[int64]int32
	ext    int64
	extOK  bool
}

// NewAggregate returns an empty aggregate for e, without limits.
func NewAggregate(e *Evaluator) *Aggregate {
	return NewLimitedAggregate(e, Limits{})
}

// NewLimitedAggregate returns an empty aggregate for e that stays within
// limits.
func NewLimitedAggregate(e *Evaluator, limits Limits) *Aggregate {
	a := &Aggregate{e: e, shareKey: e.ShareKey(), limits: limits, fresh: true}
	c := newShared(e, NewKeys())
	c.views, c.live = []*Aggregate{a}, 1
	a.core.Store(c)
	return a
}

func newShared(e *Evaluator, keys *Keys) *Shared {
	return &Shared{
		e:       e,
		keys:    keys,
		entries: newEntryStore(e.value == nil),
		series:  make(map[string]*series),
		errs:    make(map[ObjectID]*valueError),
	}
}

// bind makes c key its entries by keys: the events handler passes its
// watch's table with every call, and a state met first (made by a
// reconciler, or moved from another watch) has its entries keyed anew
// once. c's mu is held.
func (c *Shared) bind(keys *Keys) {
	if keys == nil || c.keys == keys {
		return
	}
	old := c.keys
	entries := c.entries.empty()
	errs := make(map[ObjectID]*valueError, len(c.errs))
	c.entries.each(func(id ObjectID) {
		nid := keys.Intern(old.UID(id))
		en, _ := c.entries.get(id)
		entries.set(nid, en)
		if verr, ok := c.errs[id]; ok {
			errs[nid] = verr
			if id == c.lastErr {
				c.lastErr = nid
			}
		}
		old.Release(id)
	})
	c.keys, c.entries, c.errs = keys, entries, errs
}

// dropEntries forgets every object, releasing their IDs; c's mu is held.
func (c *Shared) dropEntries() {
	c.keys.mu.Lock()
	c.entries.each(c.keys.releaseLocked)
	c.keys.mu.Unlock()
	c.entries = c.entries.empty()
	c.errs = make(map[ObjectID]*valueError)
}

// coreEpoch moves whenever some aggregate moves to another core; see
// CoreEpoch.
var coreEpoch atomic.Uint64

// CoreEpoch returns a number that moves whenever any aggregate starts
// reading another Shared (Attach, going over its limits while shared,
// Close while shared). What a caller learnt of which state its
// aggregates read holds while it stays put.
func CoreEpoch() uint64 { return coreEpoch.Load() }

// setCore makes the aggregate read c, nothing else yet; the old core's
// mu is held. Version moves on by one.
func (a *Aggregate) setCore(c *Shared) {
	a.base = a.base + a.core.Load().changes + 1 - c.changes
	a.core.Store(c)
	coreEpoch.Add(1)
}

// Version returns a number that moves whenever Series may return other
// series, and never goes back: a reader that rendered the series at one
// version need not render them again while it stays. /metrics renders
// an event-driven metric by it, so that its freshness does not wait for
// the metric being told of the change.
func (a *Aggregate) Version() uint64 {
	c := a.lock()
	defer c.mu.Unlock()
	return a.base + c.changes
}

// lock locks the aggregate's current core and returns it.
func (a *Aggregate) lock() *Shared {
	for {
		c := a.core.Load()
		c.mu.Lock()
		if a.core.Load() == c {
			return c
		}
		c.mu.Unlock()
	}
}

// live reports whether the aggregate takes objects; its core's mu is held.
func (a *Aggregate) live() bool { return !a.closed && a.limitErr == nil }

// Evaluator returns the evaluator the aggregate was made with.
func (a *Aggregate) Evaluator() *Evaluator { return a.e }

// ShareKey returns the evaluator's ShareKey: aggregates with the same one
// may share their state on one watch.
func (a *Aggregate) ShareKey() string { return a.shareKey }

// Shared returns the state the aggregate currently reads. It changes when
// the aggregate attaches to another's, goes over its limits or closes
// while shared: read it anew for every event.
func (a *Aggregate) Shared() *Shared { return a.core.Load() }

// Upsert evaluates obj (unstructured content) under uid (use UID(obj) so
// that Replace agrees). An object that no longer Matches is removed.
// changed reports whether Series() changed: false means it did not.
//
// The aggregate keeps uid (interned), not obj.
func (a *Aggregate) Upsert(uid string, obj map[string]any) (changed bool) {
	c := a.lock()
	defer c.mu.Unlock()
	a.fresh = false
	id := c.keys.Intern(uid)
	defer c.keys.Release(id)
	dropped := c.unpoll()
	changed, _ = c.upsert(id, obj, false)
	return changed || dropped
}

// Delete removes the object with uid; changed as for Upsert.
func (a *Aggregate) Delete(uid string) (changed bool) {
	c := a.lock()
	defer c.mu.Unlock()
	a.fresh = false
	id, ok := c.keys.Lookup(uid)
	return ok && c.remove(id)
}

// Replace makes the aggregate hold exactly objs, keyed by UID(obj), as a
// relist or a poll does; changed as for Upsert. The result is the same as
// Upsert of each object and Delete of every object not in objs.
func (a *Aggregate) Replace(objs []map[string]any) (changed bool) {
	r := a.BeginReplace()
	r.Add(objs...)
	return r.Finish()
}

// Upsert is Aggregate.Upsert for every aggregate attached, for the
// object keys interns as id (the caller holds a reference); held reports
// whether the object is held afterwards (it matches). Pass the same keys
// with every call: the events handler passes its watch's. matched tells
// that the caller knows the object matches the selectors (an index
// decided it), so they are not evaluated again.
func (c *Shared) Upsert(keys *Keys, id ObjectID, obj map[string]any, matched bool) (changed, held bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bind(keys)
	dropped := c.unpoll()
	changed, held = c.upsert(id, obj, matched)
	return changed || dropped, held
}

// Delete is Aggregate.Delete for every aggregate attached; keys and id as
// for Upsert.
func (c *Shared) Delete(keys *Keys, id ObjectID) (changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bind(keys)
	return c.remove(id)
}

// Replacement is a Replace applied in pieces, for lists read page by page:
// only which objects were seen so far is kept (a bit per object ID),
// never the pages. Nothing else may change the aggregate between
// BeginReplace and Finish. A Replace is also how an aggregate over its
// limits tries again: it starts from nothing.
type Replacement struct {
	c    *Shared
	seen idSet
	// track: objects held at the start may be missing from the list, so
	// seen is kept.
	track   bool
	changed bool
}

// BeginReplace starts a Replace whose objects come through Add.
func (a *Aggregate) BeginReplace() *Replacement {
	c := a.lock()
	defer c.mu.Unlock()
	a.fresh = false
	return c.beginReplace()
}

// BeginReplace is Aggregate.BeginReplace for every aggregate attached,
// whose objects come through Put with IDs of keys (nil: the table the
// state has; Add interns through it).
func (c *Shared) BeginReplace(keys *Keys) *Replacement {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bind(keys)
	return c.beginReplace()
}

func (c *Shared) beginReplace() *Replacement {
	r := &Replacement{c: c}
	for _, v := range c.views {
		if v.limitErr != nil && !v.closed {
			v.limitErr, v.limitedAt = nil, time.Time{}
			v.limited.Store(false)
			c.live++
			c.changes++
			r.changed = true
		}
	}
	if c.unpoll() {
		r.changed = true
	}
	r.track = c.entries.len() > 0
	return r
}

// Add applies some of the objects, each under UID(obj).
func (r *Replacement) Add(objs ...map[string]any) {
	for _, obj := range objs {
		r.add(obj)
	}
}

func (r *Replacement) add(obj map[string]any) {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	id := r.c.keys.Intern(UID(obj))
	defer r.c.keys.Release(id)
	r.put(id, obj)
}

// Put applies one object, interned as id by the keys BeginReplace was
// given (the caller holds a reference), and reports whether it is held
// afterwards (it matches).
func (r *Replacement) Put(id ObjectID, obj map[string]any) (held bool) {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	return r.put(id, obj)
}

func (r *Replacement) put(id ObjectID, obj map[string]any) (held bool) {
	if r.c.live == 0 {
		r.track, r.seen = false, nil // nothing is kept over the limits
		return false
	}
	if r.track {
		r.seen.add(id)
	}
	changed, held := r.c.upsert(id, obj, false)
	if changed {
		r.changed = true
	}
	return held
}

// Finish removes the objects that no Add named and reports whether the
// series changed.
func (r *Replacement) Finish() (changed bool) {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	if r.track {
		r.c.entries.each(func(id ObjectID) {
			if !r.seen.has(id) && r.c.remove(id) {
				r.changed = true
			}
		})
	}
	r.track, r.seen = false, nil
	return r.changed
}

// upsert applies obj, which matches if matched; held reports whether the
// core holds it afterwards.
func (c *Shared) upsert(id ObjectID, obj map[string]any, matched bool) (changed, held bool) {
	if c.live == 0 {
		return false, false
	}
	if !matched && !c.e.Matches(obj) {
		return c.remove(id), false
	}
	key, value, state, verr := c.e.appendKey(c.buf[:0], obj)
	c.buf = key
	old, had := c.entries.get(id)
	var s *series
	switch {
	case state != stateValued:
		value = 0
	case had && old.s != nil && old.s.key == string(key):
		s = old.s // most updates leave the object in its series
	default:
		if s = c.series[string(key)]; s == nil {
			if !c.admit(key, old) {
				return true, false // every aggregate went over its limits
			}
			s = c.newSeries(string(key))
		}
	}
	if verr != nil {
		c.errs[id] = verr
		c.lastErr = id
	} else if len(c.errs) > 0 {
		delete(c.errs, id)
	}
	if had && old.s == s && old.value == value {
		return false, true
	}
	if !had {
		c.keys.Ref(id)
	}
	if s != nil && s.n == 0 {
		// A new series: it gets its slot before set, which names it.
		c.entries.addSeries(s)
	}
	c.entries.set(id, entry{s: s, value: value})
	return c.move(old.s, old.value, s, value), true
}

func (c *Shared) remove(id ObjectID) bool {
	old, had := c.entries.get(id)
	if !had {
		return false
	}
	c.entries.delete(id)
	if len(c.errs) > 0 {
		delete(c.errs, id)
	}
	c.keys.Release(id)
	return c.move(old.s, old.value, nil, 0)
}

// move moves one object's contribution from one series to another (either
// may be nil) and reports whether a series appeared, disappeared or
// changed its value.
func (c *Shared) move(from *series, fromValue int64, to *series, toValue int64) bool {
	agg := c.e.agg
	var beforeFrom, beforeTo int64
	if from != nil {
		beforeFrom = from.value(agg)
	}
	toIsNew := to != nil && to.n == 0
	if to != nil && !toIsNew {
		beforeTo = to.value(agg)
	}
	// Add before removing so that a series the object stays in never
	// becomes empty in between.
	if to != nil {
		to.add(toValue, agg)
		if toIsNew {
			c.series[to.key] = to
			c.sorted = nil
		}
	}
	changed := toIsNew
	if from != nil {
		from.remove(fromValue, agg)
		if from.n == 0 {
			delete(c.series, from.key)
			c.entries.dropSeries(from)
			c.released()
			c.sorted = nil
			changed = true
		} else if from.value(agg) != beforeFrom {
			changed = true
		}
	}
	if to != nil && !toIsNew && to != from && to.value(agg) != beforeTo {
		changed = true
	}
	if changed {
		c.changes++
	}
	return changed
}

// newSeries returns an empty series for key; it is added to the index by
// move when its first object arrives.
func (c *Shared) newSeries(key string) *series { return newSeries(c.e, key) }

func newSeries(e *Evaluator, key string) *series {
	key = strings.Clone(key)
	s := &series{key: key, dims: e.decodeKey(key)}
	if e.agg == v1alpha1.AggregationMax || e.agg == v1alpha1.AggregationMin {
		s.counts = make(map[int64]int32, 1)
	}
	return s
}

// Series returns a snapshot of all series, ordered by dimension values.
func (a *Aggregate) Series() []Series {
	c := a.lock()
	defer c.mu.Unlock()
	if c.sorted == nil {
		c.sorted = make([]*series, 0, len(c.series))
		for _, s := range c.series {
			c.sorted = append(c.sorted, s)
		}
		slices.SortFunc(c.sorted, func(x, y *series) int { return compareKeys(x.key, y.key) })
	}
	out := make([]Series, len(c.sorted))
	for i, s := range c.sorted {
		out[i] = Series{Dimensions: s.dims, Value: s.value(c.e.agg)}
	}
	return out
}

// SeriesLen returns the number of series, without rendering them.
func (a *Aggregate) SeriesLen() int {
	c := a.lock()
	defer c.mu.Unlock()
	return len(c.series)
}

// Len returns the number of matching objects held, including those that
// are in no series (valueFrom missing or unreadable).
func (a *Aggregate) Len() int {
	c := a.lock()
	defer c.mu.Unlock()
	return c.entries.len() + c.polled.objects
}

// ObjectErrors returns how many objects are currently left out because
// their valueFrom field cannot be read, and the message of the latest such
// error still present ("" when there is none), for a condition. The
// message names the path and the kind of value found, never the value or
// the object.
func (a *Aggregate) ObjectErrors() (count int, lastMessage string) {
	c := a.lock()
	defer c.mu.Unlock()
	if len(c.errs) == 0 {
		if c.polled.errs > 0 {
			return c.polled.errs, c.e.valueErrorMessage(c.polled.lastErr)
		}
		return 0, ""
	}
	if verr, ok := c.errs[c.lastErr]; ok {
		return len(c.errs), c.e.valueErrorMessage(verr)
	}
	// The latest error went away; pick any remaining one, deterministically:
	// the object of the least UID.
	first, uid := true, ""
	for id := range c.errs {
		if u := c.keys.UID(id); first || u < uid {
			first, uid, c.lastErr = false, u, id
		}
	}
	return len(c.errs), c.e.valueErrorMessage(c.errs[c.lastErr])
}

func (s *series) add(v int64, agg v1alpha1.Aggregation) {
	s.n++
	switch agg {
	case v1alpha1.AggregationMax, v1alpha1.AggregationMin:
		s.counts[v]++
		if s.n == 1 {
			s.ext, s.extOK = v, true
		} else if s.extOK && better(v, s.ext, agg) {
			s.ext = v
		}
	default:
		s.sum.add(v)
	}
}

func (s *series) remove(v int64, agg v1alpha1.Aggregation) {
	s.n--
	switch agg {
	case v1alpha1.AggregationMax, v1alpha1.AggregationMin:
		if c := s.counts[v] - 1; c > 0 {
			s.counts[v] = c
		} else {
			delete(s.counts, v)
			if v == s.ext {
				s.extOK = false
			}
		}
	default:
		s.sum.sub(v)
	}
}

func better(v, than int64, agg v1alpha1.Aggregation) bool {
	if agg == v1alpha1.AggregationMax {
		return v > than
	}
	return v < than
}

// value returns the aggregated value; 0 for an empty series.
func (s *series) value(agg v1alpha1.Aggregation) int64 {
	if s.n == 0 {
		return 0
	}
	switch agg {
	case v1alpha1.AggregationMax, v1alpha1.AggregationMin:
		if !s.extOK {
			first := true
			for v := range s.counts {
				if first || better(v, s.ext, agg) {
					s.ext, first = v, false
				}
			}
			s.extOK = true
		}
		return s.ext
	case v1alpha1.AggregationMean:
		return s.sum.floorDiv(s.n)
	}
	return s.sum.saturated()
}

// int128 is a two's complement 128-bit integer, so that sums of int64
// values stay exact under adds and removes.
type int128 struct {
	hi int64
	lo uint64
}

func (x *int128) add(v int64) {
	lo, carry := bits.Add64(x.lo, uint64(v), 0)
	x.hi += v>>63 + int64(carry)
	x.lo = lo
}

func (x *int128) sub(v int64) {
	lo, borrow := bits.Sub64(x.lo, uint64(v), 0)
	x.hi -= v>>63 + int64(borrow)
	x.lo = lo
}

func (x int128) fitsInt64() bool { return x.hi == int64(x.lo)>>63 }

// saturated returns x clamped to the int64 range.
func (x int128) saturated() int64 {
	switch {
	case x.fitsInt64():
		return int64(x.lo)
	case x.hi < 0:
		return math.MinInt64
	}
	return math.MaxInt64
}

// floorDiv returns floor(x / n) for n > 0.
func (x int128) floorDiv(n int64) int64 {
	if x.fitsInt64() {
		v := int64(x.lo)
		q := v / n
		if v%n != 0 && v < 0 {
			q--
		}
		return q
	}
	b := new(big.Int).Lsh(big.NewInt(x.hi), 64)
	b.Or(b, new(big.Int).SetUint64(x.lo))
	// Euclidean division by a positive divisor rounds down.
	b.Div(b, big.NewInt(n))
	if !b.IsInt64() {
		return x.saturated()
	}
	return b.Int64()
}
