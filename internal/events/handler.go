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
	// NotifyDelay, when positive, gathers the changes events make to each
	// state for up to this long and tells the metrics reading it once,
	// instead of once per event: at a thousand metrics on a watch an
	// event changes hundreds of them, and telling each costs more than
	// evaluating the event. The metrics of a group told once are told
	// again no sooner than ten times NotifyDelay later (see watch.flush);
	// /metrics does not wait for the telling (it renders by the series'
	// own version), pushes and status checks may follow a change up to
	// that much later. Zero tells every change at once.
	NotifyDelay time.Duration
}

// DefaultNotifyDelay is the NotifyDelay the operator runs with: small
// beside the 250 ms it aims for between a write and /metrics, long
// enough to gather several events of a busy watch.
const DefaultNotifyDelay = 20 * time.Millisecond

// retellFactor × NotifyDelay is how soon the metrics of a group (metrics
// of one spec) told of a change may be told again: a busy watch changes
// most groups at every flush, and telling a thousand metrics fifty
// times a second was the largest cost of the event path. A group changed
// after a quiet spell is told after NotifyDelay as before.
const retellFactor = 10

// Upsert applies an added or updated object: each metric that may want
// it now or held it before re-evaluates it, which also removes it from
// metrics whose selectors it no longer matches. It returns Held: the
// watch's object limit is checked after every add, and the count is at
// hand here.
func (h *Handler) Upsert(key registry.InformerKey, obj map[string]any) (held int) {
	return h.apply(key, obj, false)
}

// Delete removes an object from every metric that holds it.
func (h *Handler) Delete(key registry.InformerKey, obj map[string]any) {
	h.apply(key, obj, true)
}

func (h *Handler) apply(key registry.InformerKey, obj map[string]any, del bool) (held int) {
	start := time.Now()
	op, typ := "upsert", upsertEvents
	if del {
		op, typ = "delete", deleteEvents
	}
	idx, w := h.Registry.Index(key), h.watch(key)
	if idx == nil || w == nil {
		typ.observe(start)
		logEvent(key, op, 0, 0)
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	uid := evaluation.UID(obj)
	var o *object
	id, known := w.keys.Lookup(uid)
	if known {
		o = w.tracked(id)
	}
	if o == nil {
		// A reference of this event's own, kept if some group holds the
		// object afterwards; a tracked object's is the watch's.
		id = w.keys.Intern(uid)
	}
	w.plansFor(idx)
	cands, fromIndex := w.candidates(idx, obj, o)
	w.warm(idx, cands)
	holders := w.holders[:0]
	evaluated, changed := 0, 0
	for i, g := range cands {
		grp := &idx.Groups[g]
		res := w.applyGroup(key, grp, id, obj, i < fromIndex && grp.Decided, del)
		evaluated += res.subs
		changed += res.changed
		if !del && (res.held || (!res.touched && o.has(grp.ID))) {
			holders = append(holders, grp.ID)
		}
	}
	w.holders = holders
	switch {
	case o == nil:
		if len(holders) > 0 {
			w.track(id, holders)
		}
		w.keys.Release(id)
	case len(holders) == 0:
		w.untrack(id)
	default:
		o.groups = append(o.groups[:0], holders...)
	}
	typ.observe(start)
	logEvent(key, op, evaluated, changed)
	return w.held
}

// log is the ResourceEventHandler's logger; its lines are at V(2), one per
// event, for following a watch's events when debugging.
var log = ctrl.Log.WithName("eventhandler")

func logEvent(key registry.InformerKey, op string, metrics, changed int) {
	if l := log.V(2); l.Enabled() {
		l.Info("Event applied", append(key.LogValues(), "op", op, "metrics", metrics, "changed", changed)...)
	}
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
