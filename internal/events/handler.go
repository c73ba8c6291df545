package events

import (
	"time"

	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/registry"
)

// Handler fans the events of a watch out to the metrics subscribed to it.
type Handler struct {
	Registry *registry.Registry
}

// Upsert applies an added or updated object: each interested metric
// re-evaluates it, which also removes it from metrics whose selectors it
// no longer matches.
func (h *Handler) Upsert(key registry.InformerKey, obj map[string]any) {
	start := time.Now()
	uid := evaluation.UID(obj)
	for _, s := range h.Registry.Interested(key) {
		if s.Synced() && s.Aggregate.Upsert(uid, obj) && s.OnChange != nil {
			s.OnChange()
		}
	}
	observe("upsert", start)
}

// Delete removes an object from every interested metric.
func (h *Handler) Delete(key registry.InformerKey, obj map[string]any) {
	start := time.Now()
	uid := evaluation.UID(obj)
	for _, s := range h.Registry.Interested(key) {
		if s.Synced() && s.Aggregate.Delete(uid) && s.OnChange != nil {
			s.OnChange()
		}
	}
	observe("delete", start)
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
	subs  []*registry.Subscription
	reps  []*evaluation.Replacement
	start time.Time
}

// BeginRelist starts applying a full list to subs (the watch's
// subscribers, or one metric joining it).
func (h *Handler) BeginRelist(_ registry.InformerKey, subs []*registry.Subscription) *Relist {
	r := &Relist{subs: subs, reps: make([]*evaluation.Replacement, len(subs)), start: time.Now()}
	for i, s := range subs {
		r.reps[i] = s.Aggregate.BeginReplace()
	}
	return r
}

// Add applies one object of the list.
func (r *Relist) Add(obj map[string]any) {
	for _, rep := range r.reps {
		rep.Add(obj)
	}
}

// Finish removes what the list did not name, and tells each metric: the
// first list marks it synced (it is then published), a later one that
// changed something is a change.
func (r *Relist) Finish() {
	for i, s := range r.subs {
		changed := r.reps[i].Finish()
		if !s.Synced() {
			s.MarkSynced()
		} else if changed && s.OnChange != nil {
			s.OnChange()
		}
	}
	observe("replace", r.start)
}

// Fail tells every interested metric that the watch failed.
func (h *Handler) Fail(key registry.InformerKey, err error) {
	for _, s := range h.Registry.Interested(key) {
		s.Unsync()
		if s.OnError != nil {
			s.OnError(err)
		}
	}
}
