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
	start := time.Now()
	for _, s := range h.Registry.Interested(key) {
		changed := s.Aggregate.Replace(objs)
		if !s.Synced() {
			s.MarkSynced()
		} else if changed && s.OnChange != nil {
			s.OnChange()
		}
	}
	observe("replace", start)
}

// Fill gives a metric that joined a running watch the current objects.
func (h *Handler) Fill(s *registry.Subscription, objs []map[string]any) {
	s.Aggregate.Replace(objs)
	s.MarkSynced()
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
