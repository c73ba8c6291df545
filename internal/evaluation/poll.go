package evaluation

import "time"

// Poll makes the aggregate hold the series of exactly objs, as a poll
// does, and keeps only those series between polls: no per-object state.
// A polling metric lists all its objects every time, so it needs nothing
// of the last list to evaluate the next one; keeping the objects' entries
// would make what a tenant's polling metrics hold grow with metrics ×
// objects rather than with their series. changed reports whether Series
// (or going over or back under the limits) changed, and Version moves
// with it.
//
// The list is evaluated apart, keeping only the series, and the result
// swapped in at once: readers see the last poll's series until then,
// never a list half applied. objs is a list, each object once (a
// duplicate would count twice). Limits hold as for Replace: over MaxSeries,
// MaxValueLength or the budget, the aggregate holds nothing and Err says
// why until a later Poll is within them. The budget is charged for the
// difference between the old and new number of series, so a poll that
// keeps its series never competes for the budget with other metrics.
// Len and ObjectErrors report the last poll's objects.
//
// Poll drops whatever an Upsert or Replace left; an Upsert, Delete or
// Replace after a Poll starts from nothing, since the objects behind the
// polled series are not known. An aggregate that shares its state
// (Attach) is replaced as by Replace.
func (a *Aggregate) Poll(objs []map[string]any) (changed bool) {
	c := a.lock()
	a.fresh = false // nothing may attach to it from now on
	shared := len(c.views) > 1
	c.mu.Unlock()
	if shared {
		return a.Replace(objs)
	}

	// Evaluated without the budget: it is charged once, with the result.
	polled, summary, err := a.evaluate(objs)

	c = a.lock()
	defer c.mu.Unlock()
	if a.closed || len(c.views) > 1 {
		// Closed meanwhile (its budget is given back), or another
		// aggregate attached to this one: a poll no longer applies.
		return false
	}
	if c.entries.len() > 0 {
		c.dropEntries() // left by an Upsert or Replace: Poll keeps none
	}
	wasLimited := a.limitErr != nil
	if err == nil {
		err = a.charge(len(polled))
	}
	if err != nil {
		a.limits.Budget.give(a.held)
		a.held = 0
		a.limitErr, a.limitedAt = err, time.Now()
		a.limited.Store(true)
		if !wasLimited {
			c.live--
			changed = true
		}
		c.setPolled(make(map[string]*series), pollSummary{})
	} else {
		if wasLimited {
			a.limitErr, a.limitedAt = nil, time.Time{}
			a.limited.Store(false)
			c.live++
			changed = true
		}
		if !sameSeries(c.series, polled, c.e) {
			changed = true
		}
		c.setPolled(polled, summary)
	}
	if changed {
		c.changes++
	}
	return changed
}

// charge makes the aggregate hold want series of its budget instead of
// a.held; when the budget has not that many left it takes nothing and
// returns the budget's error. a's core's mu is held.
func (a *Aggregate) charge(want int) error {
	switch d := want - a.held; {
	case d > 0:
		if refused := a.limits.Budget.takeN(d); refused != nil {
			return budgetError(refused)
		}
	case d < 0:
		a.limits.Budget.give(-d)
	}
	a.held = want
	return nil
}

// evaluate computes the series of objs, a list that has each object
// once, keeping nothing per object; err is the first limit a new series
// breaks (MaxSeries, MaxValueLength; the caller charges the budget).
func (a *Aggregate) evaluate(objs []map[string]any) (map[string]*series, pollSummary, error) {
	e := a.e
	out := make(map[string]*series)
	sum := pollSummary{active: true}
	var buf []byte
	for _, obj := range objs {
		if !e.Matches(obj) {
			continue
		}
		key, value, state, verr := e.appendKey(buf[:0], obj)
		buf = key
		sum.objects++
		if verr != nil {
			sum.errs++
			sum.lastErr = verr
		}
		if state != stateValued {
			continue // held, in no series: as Upsert does
		}
		s := out[string(key)]
		if s == nil {
			if err := a.checkValues(key); err != nil {
				return nil, pollSummary{}, err
			}
			if a.limits.MaxSeries > 0 && len(out) >= a.limits.MaxSeries {
				return nil, pollSummary{}, a.seriesLimitError()
			}
			s = newSeries(e, string(key))
			out[s.key] = s
		}
		s.add(value, e.agg)
	}
	return out, sum, nil
}

// setPolled makes a poll's series and summary of its objects what c
// holds; c's mu is held. The series are settled (their extreme found)
// and keep no multiset of values: nothing is added to or removed from
// them until the next poll replaces them.
func (c *Shared) setPolled(polled map[string]*series, summary pollSummary) {
	for _, s := range polled {
		s.value(c.e.agg)
		s.counts = nil
	}
	c.series, c.sorted, c.buf = polled, nil, nil
	c.entries = newEntryStore(c.e.value == nil)
	summary.active = true
	c.polled = summary
}

// sameSeries reports whether two sets of series have the same keys and
// values.
func sameSeries(old, next map[string]*series, e *Evaluator) bool {
	if len(old) != len(next) {
		return false
	}
	for k, s := range next {
		o := old[k]
		if o == nil || o.value(e.agg) != s.value(e.agg) {
			return false
		}
	}
	return true
}

// unpoll drops the series a Poll left, which no object backs, before an
// object is applied, and reports whether there were any; c's mu is held.
// They are given back to the budget of every live aggregate, as each
// series going would.
func (c *Shared) unpoll() (dropped bool) {
	if !c.polled.active || c.live == 0 {
		return false // closed or over the limits: no object is applied
	}
	for range c.series {
		c.released()
	}
	dropped = len(c.series) > 0
	if dropped {
		c.changes++
	}
	c.series, c.sorted, c.polled = make(map[string]*series), nil, pollSummary{}
	return dropped
}

// pollSummary is what a polled state keeps of its last poll's objects,
// for Len and ObjectErrors.
type pollSummary struct {
	active  bool // the series are a poll's, without entries
	objects int
	errs    int
	lastErr *valueError
}
