package events

import (
	"slices"
	"time"

	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/registry"
)

// Relist is a full list applied object by object, as its pages arrive:
// nothing but the objects' UIDs is kept until Finish, so a list of any
// size costs one page of memory.
//
// A list is applied once per state: metrics of identical specs share one
// (evaluation.Aggregate.Attach). A metric joining a watch whose state for
// its spec is current (another metric of that spec is synced) shares it
// and needs nothing from the list; it is marked synced by Finish.
type Relist struct {
	key   registry.InformerKey
	subs  []*registry.Subscription
	reg   *registry.Registry
	idx   *registry.Index
	w     *watch
	parts []relistPart
	// ready are the metrics that share a current state.
	ready []*registry.Subscription
	start time.Time
}

// relistPart is one state the list replaces.
type relistPart struct {
	c     *evaluation.Shared
	rep   *evaluation.Replacement
	group int // position in idx, -1 for none
	subs  []*registry.Subscription
	// failed: evaluating panicked, its metrics are disabled.
	failed bool
}

// BeginRelist starts applying a full list to subs (the watch's
// subscribers, or the metrics joining it). Subscriptions that are no
// longer registered, or disabled, are left out, and so is one that is
// dropped or disabled while the list runs.
func (h *Handler) BeginRelist(key registry.InformerKey, subs []*registry.Subscription) *Relist {
	r := &Relist{key: key, reg: h.Registry, start: time.Now()}
	for _, s := range subs {
		if s.Active() {
			r.subs = append(r.subs, s)
		}
	}
	r.idx, r.w = h.Registry.Index(key), h.watch(key)
	r.share()
	current := map[*evaluation.Shared]bool{}
	for _, t := range h.Registry.Interested(key) {
		if t.Active() && t.Synced() {
			current[t.Aggregate.Shared()] = true
		}
	}
	for _, s := range r.subs {
		c := s.Aggregate.Shared()
		if !s.Synced() && current[c] {
			r.ready = append(r.ready, s)
			continue
		}
		i := 0
		for i < len(r.parts) && r.parts[i].c != c {
			i++
		}
		if i == len(r.parts) {
			g := -1
			if r.idx != nil {
				if pos, ok := r.idx.GroupOf(s.Aggregate.ShareKey()); ok {
					g = pos
				}
			}
			var keys *evaluation.Keys
			if r.w != nil {
				keys = r.w.keys
			}
			r.parts = append(r.parts, relistPart{c: c, rep: c.BeginReplace(keys), group: g})
		}
		r.parts[i].subs = append(r.parts[i].subs, s)
	}
	if r.w != nil && r.full() {
		// Every state is replaced: what held which object is learnt anew.
		r.w.mu.Lock()
		r.w.untrackAll()
		r.w.mu.Unlock()
	}
	return r
}

// share attaches the list's fresh metrics to the state of a synced metric
// of the same spec when there is one, else to the first fresh metric of
// their spec in the list, so that the list fills each spec's state once.
func (r *Relist) share() {
	hosts := map[string]*evaluation.Aggregate{}
	for _, s := range r.subs {
		if s.Synced() {
			continue
		}
		sk := s.Aggregate.ShareKey()
		attached := false
		if r.idx != nil {
			if g, ok := r.idx.GroupOf(sk); ok {
				for _, t := range r.idx.Groups[g].Subs {
					if t != s && t.Active() && t.Synced() && s.Aggregate.Attach(t.Aggregate) {
						attached = true
						break
					}
				}
			}
		}
		if attached {
			continue
		}
		if host, ok := hosts[sk]; !ok || !s.Aggregate.Attach(host) {
			if !ok {
				hosts[sk] = s.Aggregate
			}
		}
	}
}

// full reports whether the list is for every active metric of the watch.
func (r *Relist) full() bool {
	in := make(map[*registry.Subscription]bool, len(r.subs))
	for _, s := range r.subs {
		in[s] = true
	}
	for _, t := range r.reg.Interested(r.key) {
		if t.Active() && !in[t] {
			return false
		}
	}
	return true
}

// Listening reports whether any metric the list is for is still active.
func (r *Relist) Listening() bool {
	for _, s := range r.subs {
		if s.Active() {
			return true
		}
	}
	return false
}

// Add applies one object of the list.
func (r *Relist) Add(obj map[string]any) {
	if hooked() {
		for _, s := range r.subs {
			if s.Active() {
				hook(r.key, s, obj, "relist")
			}
		}
	}
	if len(r.parts) == 0 {
		return
	}
	if r.w == nil {
		for i := range r.parts {
			r.add(&r.parts[i], obj)
		}
		return
	}
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	id := r.w.keys.Intern(evaluation.UID(obj))
	defer r.w.keys.Release(id)
	if r.idx != nil {
		// Groups that cannot want the object skip it: their Finish drops
		// it if they held it.
		r.w.candidates(r.idx, obj, nil)
	}
	// The groups holding the object are gathered and recorded at once:
	// on a full list the object is new to the watch, and its list of
	// groups is then allocated once, at its size.
	holders := r.w.holders[:0]
	for i := range r.parts {
		p := &r.parts[i]
		if p.group >= 0 && !r.w.scratch.Has(p.group) {
			continue
		}
		if r.put(p, id, obj) && p.group >= 0 {
			if gid := r.idx.Groups[p.group].ID; !slices.Contains(holders, gid) {
				holders = append(holders, gid)
			}
		}
	}
	r.w.holders = holders
	r.w.holdAll(id, holders)
}

// put applies obj, interned as id by the watch, to one state, guarded as
// evaluate is.
func (r *Relist) put(p *relistPart, id evaluation.ObjectID, obj map[string]any) (held bool) {
	if p.failed {
		return false
	}
	defer func() {
		if rec := recover(); rec != nil {
			p.failed, held = true, false
			r.disable(p, rec)
		}
	}()
	return p.rep.Put(id, obj)
}

// add is put for a list without a watch state (the watch lost its last
// metric meanwhile): the state interns the object itself.
func (r *Relist) add(p *relistPart, obj map[string]any) {
	if p.failed {
		return
	}
	defer func() {
		if rec := recover(); rec != nil {
			p.failed = true
			r.disable(p, rec)
		}
	}()
	p.rep.Add(obj)
}

// disable disables every metric reading p's state after evaluating it
// panicked.
func (r *Relist) disable(p *relistPart, rec any) {
	var err error
	for _, s := range append(r.reg.Interested(r.key), p.subs...) {
		if s.Aggregate.Shared() != p.c {
			continue
		}
		if err == nil {
			err = PanicError(s.ID, "relist", rec, "informer", r.key.String())
		}
		s.Disable(err)
	}
}

// Finish removes what the list did not name, and tells each metric: the
// first list marks it synced (it is then published), a later one that
// changed something is a change. A metric dropped or disabled meanwhile
// is told nothing.
func (r *Relist) Finish() {
	for i := range r.parts {
		p := &r.parts[i]
		if p.failed {
			continue
		}
		changed := r.finish(p)
		if p.failed {
			continue
		}
		for _, s := range p.subs {
			switch {
			case !s.Active():
			case !s.Synced():
				s.MarkSynced()
			case changed:
				s.Changed()
			}
		}
		if changed {
			// Synced metrics sharing the state beside those listed for.
			for _, t := range r.reg.Interested(r.key) {
				if t.Active() && t.Synced() && t.Aggregate.Shared() == p.c && !containsSub(p.subs, t) {
					t.Changed()
				}
			}
		}
	}
	for _, s := range r.ready {
		if s.Active() && !s.Synced() {
			s.MarkSynced()
		}
	}
	replaceEvents.observe(r.start)
}

func (r *Relist) finish(p *relistPart) (changed bool) {
	defer func() {
		if rec := recover(); rec != nil {
			p.failed, changed = true, false
			r.disable(p, rec)
		}
	}()
	return p.rep.Finish()
}

func containsSub(subs []*registry.Subscription, s *registry.Subscription) bool {
	for _, t := range subs {
		if t == s {
			return true
		}
	}
	return false
}
