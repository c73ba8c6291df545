package coordinator

import (
	"slices"
	"time"

	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
)

// claim is a metric's claim on its Prometheus family name. Of the metrics
// claiming one name the oldest owns it (creation time, then Key.String(),
// which orders by kind, namespace and name); the others are not exported
// and say so in their status, and the next in line takes over when the
// owner goes or changes its name.
type claim struct {
	key     Key
	name    string // sanitised family name
	created time.Time
}

func (a *claim) less(b *claim) bool {
	if c := a.created.Compare(b.created); c != 0 {
		return c < 0
	}
	return a.key.String() < b.key.String()
}

// claimLocked brings st's claim in line with its update and serves the
// owner's family: the metric's own when it owns its name. It returns the
// other metrics whose name changed owner (the one displaced and those
// waiting, whose status names the owner), for their status and pushes
// to follow.
func (c *Coordinator) claimLocked(key Key, st *state) []Key {
	u := st.update
	name := promexport.SanitizeName(u.Name)
	if cl := st.claim; cl != nil && cl.name == name && cl.created.Equal(u.Created) {
		if c.claims[name][0] == cl {
			c.opts.Prometheus.Set(key.String(), family(u, st))
		}
		return nil
	}
	changed := c.unclaimLocked(st)
	cl := &claim{key: key, name: name, created: u.Created}
	st.claim = cl
	list := c.claims[name]
	i, _ := slices.BinarySearchFunc(list, cl, func(e, t *claim) int {
		if e.less(t) {
			return -1
		}
		return 1
	})
	list = slices.Insert(list, i, cl)
	c.claims[name] = list
	if i == 0 {
		if len(list) > 1 {
			c.opts.Prometheus.Delete(list[1].key.String())
		}
		for _, other := range list[1:] {
			changed = append(changed, other.key)
		}
		c.opts.Prometheus.Set(key.String(), family(u, st))
	}
	return changed
}

// unclaimLocked drops st's claim. When st owned its name, the next
// claimant's family is served instead, and the remaining claimants are
// returned.
func (c *Coordinator) unclaimLocked(st *state) []Key {
	cl := st.claim
	if cl == nil {
		return nil
	}
	st.claim = nil
	list := c.claims[cl.name]
	i := slices.Index(list, cl)
	if i < 0 {
		return nil
	}
	list = slices.Delete(list, i, i+1)
	if i > 0 {
		c.claims[cl.name] = list
		return nil
	}
	c.opts.Prometheus.Delete(cl.key.String())
	if len(list) == 0 {
		delete(c.claims, cl.name)
		return nil
	}
	c.claims[cl.name] = list
	next := list[0]
	if nst := c.metrics[next.key]; nst != nil && nst.update != nil {
		c.opts.Prometheus.Set(next.key.String(), family(nst.update, nst))
	}
	keys := make([]Key, len(list))
	for i, cl := range list {
		keys[i] = cl.key
	}
	return keys
}

// ownerLocked reports whether the metric owns its family name, and the
// key of the owner; false and "" before its first Publish.
func (c *Coordinator) ownerLocked(key Key) (owner bool, ownerKey string) {
	st := c.metrics[key]
	if st == nil || st.claim == nil {
		return false, ""
	}
	first := c.claims[st.claim.name][0]
	return first == st.claim, first.key.String()
}

// ownersChanged queues a push and a status check for metrics that gained
// or lost their name through another metric's change.
func (c *Coordinator) ownersChanged(keys []Key) {
	for _, k := range keys {
		c.mu.Lock()
		st := c.metrics[k]
		var sink *SinkRef
		if st != nil && st.update != nil {
			sink = &st.update.Sink
		}
		c.mu.Unlock()
		if sink != nil {
			c.exports.Add(sink.NamespacedName)
		}
		c.status.Add(k)
	}
}
