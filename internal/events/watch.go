package events

import (
	"slices"
	"sync"
	"time"

	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/registry"
)

// watch is the handler's bookkeeping of one watch, kept in the registry
// for as long as the watch has metrics: per object, which groups of
// metrics (registry.Group) hold it, so that an update re-evaluates the
// groups that may want the object now (the index's candidates for its
// new labels) and those that held it (which must drop it if it no longer
// matches), and no others. The objects' UIDs are interned in keys, once
// for the watch: every state evaluated on it keys its entries by their
// IDs.
type watch struct {
	mu   sync.Mutex
	keys *evaluation.Keys
	// objs are, by ID, the objects some group holds (those with groups);
	// the watch holds a reference to each of their IDs. held counts them.
	objs []object
	held int

	// Scratch space of one event at a time.
	warmed   uintptr
	scratch  registry.Scratch
	cands    []int
	holders  []uint32
	cores    []coreResult
	subCores []*evaluation.Shared

	// plans are, by group position in planIdx, what applyGroup learnt
	// when it last walked the group's subscriptions, valid while the
	// index and the epochs they were learnt under stay (see plansFor).
	plans      []plan
	planIdx    *registry.Index
	planEpochs [2]uint64

	// delay is the handler's NotifyDelay, retell how soon a group told by
	// a flush may be told again (retellFactor × delay). dirty holds the states changed
	// since the last flush, each with the group whose metrics read it;
	// flushing is set while a flush is scheduled. Guarded by mu.
	delay    time.Duration
	retell   time.Duration
	dirty    map[*evaluation.Shared]*registry.Group
	flushing bool
	// flushAt is when the scheduled flush runs, timer its timer; toldAt
	// is, by group position in planIdx, when each group's metrics were
	// last told by a flush (zero: not since planIdx).
	flushAt time.Time
	timer   *time.Timer
	toldAt  []time.Time
}

// object is what the handler keeps of one object of a watch.
type object struct {
	// groups are the IDs of the groups whose aggregates may hold the
	// object: every group that does, and perhaps some that no longer do.
	// Empty while no group holds it.
	groups []uint32
}

func (o *object) has(id uint32) bool {
	return o != nil && slices.Contains(o.groups, id)
}

func (h *Handler) watch(key registry.InformerKey) *watch {
	w := h.Registry.WatchState(key, func() any {
		return &watch{keys: evaluation.NewKeys(), delay: h.NotifyDelay, retell: retellFactor * h.NotifyDelay}
	})
	if w == nil {
		return nil
	}
	return w.(*watch)
}

// candidates returns the groups that may want obj or held it as o: the
// index's candidates first, fromIndex of them, then those only o names.
func (w *watch) candidates(idx *registry.Index, obj map[string]any, o *object) (cands []int, fromIndex int) {
	md, _ := obj["metadata"].(map[string]any)
	ns, _ := md["namespace"].(string)
	labels, _ := md["labels"].(map[string]any)
	w.scratch.Begin(idx)
	cands = idx.Candidates(w.cands[:0], &w.scratch, ns, labels)
	fromIndex = len(cands)
	if o != nil {
		for _, id := range o.groups {
			if g, ok := idx.Position(id); ok && w.scratch.Add(g) {
				cands = append(cands, g)
			}
		}
	}
	w.cands = cands
	return cands, fromIndex
}

// warm warms the states of the groups cands whose plans hold (see
// evaluation.Shared.Warm), and when changes are told at once their
// metrics' subscriptions: at a thousand metrics on a watch those an
// event evaluates are cold in cache, and their misses then overlap;
// w.mu is held.
func (w *watch) warm(idx *registry.Index, cands []int) {
	if len(cands) < 2 {
		return
	}
	for _, g := range cands {
		c := w.plans[g].core
		if c == nil {
			continue
		}
		w.warmed += c.Warm()
		if w.delay == 0 {
			for _, s := range idx.Groups[g].Subs {
				if s.Active() {
					w.warmed++
				}
			}
		}
	}
}

// coreResult is what one event did to one shared state.
type coreResult struct {
	c             *evaluation.Shared
	changed, held bool
	// deferred: some metric reading c is told of the change by flush.
	deferred bool
}

// groupResult is what one event did to one group.
type groupResult struct {
	subs, changed int
	// touched: some aggregate of the group evaluated the object; held:
	// one holds it afterwards.
	touched, held bool
}

// plan is what a walk over a group's subscriptions found when every one
// was synced and active and read the same state: an event then evaluates
// that state once and touches no subscription (at a thousand metrics on
// a watch the walk cost more than the evaluation).
type plan struct {
	core *evaluation.Shared
	subs int
}

// epochs returns the registry's and the evaluation's epochs: while both
// stay, no subscription changed its synced or active state and no
// aggregate moved to another state.
func epochs() [2]uint64 { return [2]uint64{registry.Epoch(), evaluation.CoreEpoch()} }

// plansFor drops the plans learnt under another index or other epochs,
// and when the index changed the times its groups were told; w.mu is held.
func (w *watch) plansFor(idx *registry.Index) {
	if w.planIdx != idx {
		// The groups are the new index's: forget the old ones'.
		w.toldAt = resized(w.toldAt, len(idx.Groups))
	}
	if e := epochs(); w.planIdx != idx || w.planEpochs != e {
		w.plans = resized(w.plans, len(idx.Groups))
		w.planIdx, w.planEpochs = idx, e
	}
}

// resized returns s with n zero elements, in its array if it fits.
func resized[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// current reports whether grp is a group of planIdx, which plans and
// toldAt are by; w.mu is held.
func (w *watch) current(grp *registry.Group) bool {
	return w.planIdx != nil && grp.Pos < len(w.planIdx.Groups) && &w.planIdx.Groups[grp.Pos] == grp
}

// plan returns what was learnt of grp, no core when nothing; w.mu is
// held.
func (w *watch) plan(grp *registry.Group) plan {
	if w.current(grp) {
		return w.plans[grp.Pos]
	}
	return plan{}
}

// told returns when grp's metrics were last told by a flush; w.mu is
// held.
func (w *watch) told(grp *registry.Group) (time.Time, bool) {
	if w.current(grp) && !w.toldAt[grp.Pos].IsZero() {
		return w.toldAt[grp.Pos], true
	}
	return time.Time{}, false
}

// applyGroup applies one event to a group of identical metrics: once per
// state their aggregates read (one, unless some went over their limits),
// telling each synced metric whose series changed.
// matched: the object matches the group's selectors (the index decided
// it).
func (w *watch) applyGroup(key registry.InformerKey, grp *registry.Group, id evaluation.ObjectID, obj map[string]any, matched, del bool) groupResult {
	if p := w.plan(grp); p.core != nil && !hooked() {
		return w.applyPlan(key, grp, p, id, obj, matched, del)
	}
	var res groupResult
	learn := !hooked()
	// The state each metric reads is taken before any is evaluated: a
	// metric that goes over its limits leaves the shared state during the
	// evaluation, and must be told of the change all the same.
	subCores := w.subCores[:0]
	for _, s := range grp.Subs {
		var c *evaluation.Shared
		if s.Synced() && s.Active() {
			if !del && hooked() {
				hook(key, s, obj, "upsert")
			}
			if s.Active() {
				c = s.Aggregate.Shared()
			}
		}
		subCores = append(subCores, c)
		learn = learn && c != nil && c == subCores[0]
	}
	if learn && len(subCores) > 0 {
		w.plans[grp.Pos] = plan{core: subCores[0], subs: len(subCores)}
	}
	cores := w.cores[:0]
	for i, s := range grp.Subs {
		c := subCores[i]
		if c == nil {
			continue
		}
		res.subs++
		j := 0
		for j < len(cores) && cores[j].c != c {
			j++
		}
		if j == len(cores) {
			r := coreResult{c: c}
			r.changed, r.held = w.evaluate(key, grp, c, id, obj, matched, del)
			cores = append(cores, r)
		}
		r := &cores[j]
		res.touched = true
		res.held = res.held || r.held
		if r.changed && s.Active() {
			res.changed++
			// A metric that left the state (it went over its limits) is
			// told at once: flush tells only those still reading it.
			if w.delay > 0 && s.Aggregate.Shared() == c {
				r.deferred = true
				continue
			}
			s.Changed()
		}
	}
	for _, r := range cores {
		if r.deferred {
			w.defer1(r.c, grp)
		}
	}
	clear(subCores)
	w.subCores = subCores[:0]
	w.cores = cores[:0]
	return res
}

// applyPlan is applyGroup for a group whose plan holds.
func (w *watch) applyPlan(key registry.InformerKey, grp *registry.Group, p plan, id evaluation.ObjectID, obj map[string]any, matched, del bool) groupResult {
	res := groupResult{subs: p.subs, touched: true}
	before := evaluation.CoreEpoch()
	changed, held := w.evaluate(key, grp, p.core, id, obj, matched, del)
	res.held = held
	if !changed {
		return res
	}
	if w.delay > 0 && evaluation.CoreEpoch() == before {
		res.changed = p.subs
		w.defer1(p.core, grp)
		return res
	}
	// Told at once, or some metric left the state during the evaluation
	// (it went over its limits): as applyGroup tells them.
	for _, s := range grp.Subs {
		if !s.Active() {
			continue
		}
		res.changed++
		if w.delay > 0 && s.Aggregate.Shared() == p.core {
			w.defer1(p.core, grp)
			continue
		}
		s.Changed()
	}
	return res
}

// defer1 records that c changed, for flush to tell grp's metrics that
// read it, and schedules the flush: after the delay, or when the group
// may be told again if that is later; w.mu is held.
func (w *watch) defer1(c *evaluation.Shared, grp *registry.Group) {
	if w.dirty == nil {
		w.dirty = map[*evaluation.Shared]*registry.Group{}
	}
	w.dirty[c] = grp
	at := time.Now().Add(w.delay)
	if t, ok := w.told(grp); ok && t.Add(w.retell).After(at) {
		at = t.Add(w.retell)
	}
	w.schedule(at)
}

// schedule makes the next flush run at at, unless one runs sooner; w.mu
// is held.
func (w *watch) schedule(at time.Time) {
	if w.flushing && !at.Before(w.flushAt) {
		return
	}
	w.flushing, w.flushAt = true, at
	if w.timer == nil {
		w.timer = time.AfterFunc(time.Until(at), w.flush)
		return
	}
	w.timer.Reset(time.Until(at))
}

// flush tells the metrics of every state changed since the last flush,
// once each, outside w.mu so that events go on meanwhile. A metric that
// since left the state, was dropped or is not synced is not told: it
// was told on leaving, or its publication brings its series.
//
// A group told by a flush is told again no sooner than w.retell later:
// at a thousand metrics on a busy watch telling each of them at every
// flush cost more than the events. What a metric is told of is only
// what schedules its push and status check, which run at most every
// --min-export-interval and --status-update-interval; /metrics reads
// the series' own version (evaluation.Aggregate.Version) and does not
// wait for it.
func (w *watch) flush() {
	now := time.Now()
	w.mu.Lock()
	dirty := w.dirty
	w.dirty, w.flushing = nil, false
	var next time.Time
	for c, grp := range dirty {
		if t, ok := w.told(grp); ok && now.Sub(t) < w.retell {
			// Told lately: it waits for its turn, still dirty.
			delete(dirty, c)
			if w.dirty == nil {
				w.dirty = map[*evaluation.Shared]*registry.Group{}
			}
			w.dirty[c] = grp
			if at := t.Add(w.retell); next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		if w.current(grp) {
			w.toldAt[grp.Pos] = now
		}
	}
	if !next.IsZero() {
		w.schedule(next)
	}
	// A group whose plan still holds has every metric synced and reading
	// the state: no need to ask each again.
	var planned map[*registry.Group]bool
	if w.planEpochs == epochs() {
		for c, grp := range dirty {
			if w.plan(grp).core == c {
				if planned == nil {
					planned = map[*registry.Group]bool{}
				}
				planned[grp] = true
			}
		}
	}
	w.mu.Unlock()
	for c, grp := range dirty {
		if planned[grp] {
			for _, s := range grp.Subs {
				if s.Active() {
					s.Changed()
				}
			}
			continue
		}
		for _, s := range grp.Subs {
			if s.Active() && s.Synced() && s.Aggregate.Shared() == c {
				s.Changed()
			}
		}
	}
}

// evaluate applies the event to one state, guarded: a panic disables
// every metric of the group that reads that state (it may be half
// updated), and the others go on.
func (w *watch) evaluate(key registry.InformerKey, grp *registry.Group, c *evaluation.Shared, id evaluation.ObjectID, obj map[string]any, matched, del bool) (changed, held bool) {
	path := "upsert"
	if del {
		path = "delete"
	}
	defer recoveredShared(key, grp.Subs, c, path, &changed)
	if del {
		return c.Delete(w.keys, id), false
	}
	return c.Upsert(w.keys, id, obj, matched)
}

// recoveredShared is recovered for a state that several metrics read.
func recoveredShared(key registry.InformerKey, subs []*registry.Subscription, c *evaluation.Shared, path string, changed *bool) {
	r := recover()
	if r == nil {
		return
	}
	*changed = false
	var err error
	for _, s := range subs {
		if s.Aggregate.Shared() != c {
			continue
		}
		if err == nil {
			err = PanicError(s.ID, path, r, "informer", key.String())
		}
		s.Disable(err)
	}
}

// hook runs the test hook for one metric, guarded like its evaluation.
func hook(key registry.InformerKey, s *registry.Subscription, obj map[string]any, path string) {
	var changed bool
	defer recovered(key, s, path, &changed)
	runTestHook(s.ID, obj)
}

// tracked returns what the watch keeps of the object id, nil when no
// group holds it; w.mu is held.
func (w *watch) tracked(id evaluation.ObjectID) *object {
	if int(id) < len(w.objs) && len(w.objs[id].groups) > 0 {
		return &w.objs[id]
	}
	return nil
}

// track records that groups hold the object id, which no group held
// before (the watch takes a reference to id); w.mu is held.
func (w *watch) track(id evaluation.ObjectID, groups []uint32) {
	if n := int(id) + 1; n > len(w.objs) {
		w.objs = append(w.objs, make([]object, n-len(w.objs))...)
	}
	o := &w.objs[id]
	o.groups = append(o.groups[:0], groups...)
	w.keys.Ref(id)
	w.held++
}

// untrack records that no group holds the object id; w.mu is held.
func (w *watch) untrack(id evaluation.ObjectID) {
	w.objs[id].groups = w.objs[id].groups[:0]
	w.keys.Release(id)
	w.held--
}

// untrackAll forgets which groups hold which object; w.mu is held.
func (w *watch) untrackAll() {
	for id := range w.objs {
		if len(w.objs[id].groups) > 0 {
			w.untrack(evaluation.ObjectID(id))
		}
	}
	w.objs = nil
}

// holdAll records that the groups gids (no two alike) hold the object
// id, beside those that held it already; w.mu is held.
func (w *watch) holdAll(id evaluation.ObjectID, gids []uint32) {
	if len(gids) == 0 {
		return
	}
	o := w.tracked(id)
	if o == nil {
		w.track(id, gids)
		return
	}
	for _, gid := range gids {
		if !slices.Contains(o.groups, gid) {
			o.groups = append(o.groups, gid)
		}
	}
}
