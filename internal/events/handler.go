package events

import (
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/registry"
)

// Handler fans the events of a watch out to the metrics subscribed to it.
// Evaluating one metric is guarded on its own: if it panics, that metric
// is disabled (see recovered) and the others and the watch go on.
type Handler struct {
	Registry *registry.Registry
}

// Upsert applies an added or updated object: each interested metric
// re-evaluates it, which also removes it from metrics whose selectors it
// no longer matches.
func (h *Handler) Upsert(key registry.InformerKey, obj map[string]any) {
	start := time.Now()
	uid := evaluation.UID(obj)
	subs, changed := h.Registry.Interested(key), 0
	for _, s := range subs {
		if s.Synced() && s.Active() && upsert(key, s, uid, obj) {
			s.Changed()
			changed++
		}
	}
	observe("upsert", start)
	logEvent(key, "upsert", len(subs), changed)
}

// Delete removes an object from every interested metric.
func (h *Handler) Delete(key registry.InformerKey, obj map[string]any) {
	start := time.Now()
	uid := evaluation.UID(obj)
	subs, changed := h.Registry.Interested(key), 0
	for _, s := range subs {
		if s.Synced() && s.Active() && remove(key, s, uid) {
			s.Changed()
			changed++
		}
	}
	observe("delete", start)
	logEvent(key, "delete", len(subs), changed)
}

// log is the ResourceEventHandler's logger; its lines are at V(2), one per
// event, for following a watch's events when debugging.
var log = ctrl.Log.WithName("eventhandler")

func logEvent(key registry.InformerKey, op string, metrics, changed int) {
	if l := log.V(2); l.Enabled() {
		l.Info("Event applied", append(key.LogValues(), "op", op, "metrics", metrics, "changed", changed)...)
	}
}

func upsert(key registry.InformerKey, s *registry.Subscription, uid string, obj map[string]any) (changed bool) {
	defer recovered(key, s, "upsert", &changed)
	runTestHook(s.ID, obj)
	return s.Aggregate.Upsert(uid, obj)
}

func remove(key registry.InformerKey, s *registry.Subscription, uid string) (changed bool) {
	defer recovered(key, s, "delete", &changed)
	return s.Aggregate.Delete(uid)
}

// Replace applies the full list of a watch's (re)list to every interested
// metric: objects missing from it are gone, however their deletion was
// missed.
func (h *Handler) Replace(key registry.InformerKey, objs []map[string]any) {
	r := h.BeginRelist(key, h.Registry.Interested(key))
	for _, obj := range objs {
		r.Add(obj)
	}
	r.Finish()
}

// Relist is a full list applied object by object, as its pages arrive:
// nothing but the objects' UIDs is kept until Finish, so a list of any
// size costs one page of memory.
type Relist struct {
	key   registry.InformerKey
	subs  []*registry.Subscription
	reps  []*evaluation.Replacement
	start time.Time
}

// BeginRelist starts applying a full list to subs (the watch's
// subscribers, or the metrics joining it). Subscriptions that are no
// longer registered, or disabled, are left out, and so is one that is
// dropped or disabled while the list runs.
func (h *Handler) BeginRelist(key registry.InformerKey, subs []*registry.Subscription) *Relist {
	r := &Relist{key: key, start: time.Now()}
	for _, s := range subs {
		if s.Active() {
			r.subs = append(r.subs, s)
		}
	}
	r.reps = make([]*evaluation.Replacement, len(r.subs))
	for i, s := range r.subs {
		r.reps[i] = s.Aggregate.BeginReplace()
	}
	return r
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
	for i, s := range r.subs {
		if s.Active() {
			add(r.key, s, r.reps[i], obj)
		}
	}
}

func add(key registry.InformerKey, s *registry.Subscription, rep *evaluation.Replacement, obj map[string]any) {
	var changed bool
	defer recovered(key, s, "relist", &changed)
	runTestHook(s.ID, obj)
	rep.Add(obj)
}

func finish(key registry.InformerKey, s *registry.Subscription, rep *evaluation.Replacement) (changed bool) {
	defer recovered(key, s, "relist", &changed)
	return rep.Finish()
}

// Finish removes what the list did not name, and tells each metric: the
// first list marks it synced (it is then published), a later one that
// changed something is a change. A metric dropped or disabled meanwhile
// is told nothing.
func (r *Relist) Finish() {
	for i, s := range r.subs {
		if !s.Active() {
			continue
		}
		changed := finish(r.key, s, r.reps[i])
		switch {
		case !s.Active():
		case !s.Synced():
			s.MarkSynced()
		case changed:
			s.Changed()
		}
	}
	observe("replace", r.start)
}

// Fail tells every interested metric that the watch failed.
func (h *Handler) Fail(key registry.InformerKey, err error) {
	for _, s := range h.Registry.Interested(key) {
		if !s.Active() {
			continue
		}
		s.Unsync()
		s.Fail(err)
	}
}
