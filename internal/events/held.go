package events

import (
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/registry"
)

// Held returns how many objects of the watch key some metric holds: what
// the watch's per-object state grows with. Objects no metric selects
// cost nothing and are not counted. Call it between the watch's events.
func (h *Handler) Held(key registry.InformerKey) int {
	w := h.watch(key)
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.held
}

// Drop empties the per-object state of the watch key, the handler's and
// every metric's, telling no metric: for a watch that may hold no more
// objects, whose metrics were failed (Fail) and stay withdrawn until a
// list fills them again. Call it between the watch's events.
func (h *Handler) Drop(key registry.InformerKey) {
	var keys *evaluation.Keys
	if w := h.watch(key); w != nil {
		w.mu.Lock()
		w.untrackAll()
		w.dirty, keys = nil, w.keys
		w.mu.Unlock()
	}
	dropped := map[*evaluation.Shared]bool{}
	for _, s := range h.Registry.Interested(key) {
		if c := s.Aggregate.Shared(); !dropped[c] {
			dropped[c] = true
			c.BeginReplace(keys).Finish()
		}
	}
}
