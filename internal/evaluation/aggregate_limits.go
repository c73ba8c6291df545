package evaluation

import (
	"slices"
	"sync"
	"time"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

// Limits and sharing: every aggregate attached to a Shared is held to its
// own limits as if it were alone. A new series is admitted for each of
// them on its own (its MaxSeries, its MaxValueLength) and taken from its
// Budget once per aggregate, so sharing neither lifts a tenant's limit nor
// lets one metric spend another's share of the budget: a metric whose
// spec is identical to another's counts its series as it would alone. An
// aggregate that goes over its limits leaves the shared state (it then
// holds nothing) and the others go on.

// admit checks, for every live aggregate of c, whether it may have the new
// series key, given that the object's current entry is old (zero when it
// has none); an aggregate that may not goes over its limits. It reports
// whether any aggregate is left to take objects.
func (c *Shared) admit(key []byte, old entry) bool {
	alone := old.s != nil && old.s.n == 1 // its old series goes when it moves
	for i := 0; i < len(c.views); {
		v := c.views[i]
		if !v.live() {
			i++
			continue
		}
		if err := v.admit(key, len(c.series), alone); err != nil {
			if c.trip(v, err) {
				continue // v left c.views: the next one moved to i
			}
		}
		i++
	}
	return c.live > 0
}

// admit checks whether the aggregate may start a new series with key when
// its core holds n series, and takes it from the budget.
func (a *Aggregate) admit(key []byte, n int, alone bool) error {
	l := &a.limits
	if err := a.checkValues(key); err != nil {
		return err
	}
	if l.MaxSeries > 0 {
		if alone {
			n--
		}
		if n >= l.MaxSeries {
			return a.seriesLimitError()
		}
	}
	if alone {
		l.Budget.takeAnyway()
		a.held++
		return nil
	}
	if refused := l.Budget.take(); refused != nil {
		return budgetError(refused)
	}
	a.held++
	return nil
}

func (a *Aggregate) checkValues(key []byte) error {
	if a.limits.MaxValueLength <= 0 {
		return nil
	}
	for i, off := 0, 0; off < len(key); i++ {
		v, present, next := keyPart(string(key), off)
		if present && len(v) > a.limits.MaxValueLength {
			return reason.New(v1alpha1.ReasonLabelValueTooLong,
				"a value of dimension %q is longer than %d bytes, the operator's limit (--max-label-value-length); "+
					"nothing is exported until no value is: project a shorter field, or a map or list with fewer entries",
				a.e.dims[i].name, a.limits.MaxValueLength)
		}
		off = next
	}
	return nil
}

func (a *Aggregate) seriesLimitError() error {
	return reason.New(v1alpha1.ReasonSeriesLimitExceeded,
		"the metric has more than %d series, its limit (the lower of spec.maxSeries and the operator's --max-series-per-metric); "+
			"nothing is exported until it has fewer: group by fewer or coarser projections, or narrow the selectors",
		a.limits.MaxSeries)
}

// budgetError says which budget refused a series.
func budgetError(refused *Budget) error {
	return reason.New(v1alpha1.ReasonSeriesBudgetExceeded,
		"the operator's budget of %d series for %s (%s) is used up; "+
			"nothing is exported for this metric until series are freed or the budget is raised",
		refused.Limit(), refused.scope, refused.flag)
}

// released gives one series back to the budget of every live aggregate of
// c: a series went.
func (c *Shared) released() {
	for _, v := range c.views {
		if v.live() {
			v.limits.Budget.give(1)
			v.held--
		}
	}
}

// trip puts v over its limits: it gives its series back and holds nothing
// (a partial count would be wrong, and the state is what the limit
// bounds), and ignores objects until the next Replace. Alone in c, it
// empties c; shared, it leaves c for an empty core of its own, and trip
// reports true. c's mu is held.
func (c *Shared) trip(v *Aggregate, err error) (left bool) {
	v.limits.Budget.give(v.held)
	v.held = 0
	v.limitErr, v.limitedAt = err, time.Now()
	v.limited.Store(true)
	c.live--
	c.changes++
	if len(c.views) == 1 {
		c.dropEntries()
		c.entries = newEntryStore(c.e.value == nil) // and the series' slots
		c.series = make(map[string]*series)
		c.sorted = nil
		c.buf = nil // may hold the rendering of a large object
		return false
	}
	c.leave(v, newShared(c.e, c.keys))
	return true
}

// leave moves v from c to the core to, which nothing else uses; c's mu is
// held.
func (c *Shared) leave(v *Aggregate, to *Shared) {
	c.views = slices.DeleteFunc(c.views, func(x *Aggregate) bool { return x == v })
	to.views = []*Aggregate{v}
	if v.live() {
		to.live = 1
	}
	v.setCore(to)
}

// Err returns why the aggregate is over its limits (a reason error:
// SeriesLimitExceeded, LabelValueTooLong or SeriesBudgetExceeded), or nil.
// While it is over them it holds nothing and has no series; the next
// Replace tries again.
func (a *Aggregate) Err() error {
	if !a.limited.Load() {
		return nil
	}
	c := a.lock()
	defer c.mu.Unlock()
	return a.limitErr
}

// LimitedSince returns when the aggregate went over its limits, and
// whether it is.
func (a *Aggregate) LimitedSince() (time.Time, bool) {
	c := a.lock()
	defer c.mu.Unlock()
	return a.limitedAt, a.limitErr != nil
}

// Close releases the aggregate's series from the budget and drops its
// per-object state; later changes are ignored. Call it when the metric no
// longer uses the aggregate. The series themselves stay readable, frozen:
// during a switch of modes the coordinator serves them until the new
// producer publishes, so /metrics shows no gap; they go with the last
// reference to the aggregate. A shared aggregate leaves the shared state
// with a copy of its series; the others go on.
func (a *Aggregate) Close() {
	c := a.lock()
	defer c.mu.Unlock()
	if a.closed {
		return
	}
	a.limits.Budget.give(a.held)
	a.held = 0
	if a.live() {
		c.live--
	}
	a.closed = true
	if len(c.views) == 1 {
		c.dropEntries()
		return
	}
	frozen := newShared(c.e, c.keys)
	for k, s := range c.series {
		cp := *s
		cp.value(c.e.agg) // settles ext while counts is the live multiset
		cp.counts = nil   // never read again: nothing changes a closed core
		frozen.series[k] = &cp
	}
	c.leave(a, frozen)
}

// attachMu serialises Attach, the only place that locks two cores, so
// that no two of them wait for each other.
var attachMu sync.Mutex

// Attach makes a, a fresh aggregate (given no objects yet), share host's
// state: from then on it holds what host holds, and every change to one
// is a change to both. Their specs must compile to the same ShareKey.
// a is checked against its own limits on what host holds, as a list of
// those objects would: over them, it is left over its limits (Err says
// why) and holds nothing. Attach reports whether a now reflects host's
// objects (held or refused by its limits); false when a is not fresh,
// the specs differ, or host takes no objects (closed or over its limits).
func (a *Aggregate) Attach(host *Aggregate) bool {
	if a == host || a.shareKey != host.shareKey {
		return false
	}
	attachMu.Lock()
	defer attachMu.Unlock()
	mine := a.lock()
	defer mine.mu.Unlock()
	if !a.fresh || !a.live() || len(mine.views) != 1 {
		return false
	}
	c := host.lock()
	defer c.mu.Unlock()
	if c == mine || !host.live() || c.live == 0 {
		return false
	}
	a.fresh = false
	if err := a.admitAll(c); err != nil {
		a.limitErr, a.limitedAt = err, time.Now()
		a.limited.Store(true)
		mine.live = 0
		mine.changes++
		return true
	}
	mine.views, mine.live = nil, 0
	c.views = append(c.views, a)
	c.live++
	a.setCore(c)
	return true
}

// admitAll checks a's limits against every series of c and takes them
// from its budget.
func (a *Aggregate) admitAll(c *Shared) error {
	for k := range c.series {
		if err := a.checkValues([]byte(k)); err != nil {
			return err
		}
	}
	if a.limits.MaxSeries > 0 && len(c.series) > a.limits.MaxSeries {
		return a.seriesLimitError()
	}
	if refused := a.limits.Budget.takeN(len(c.series)); refused != nil {
		return budgetError(refused)
	}
	a.held = len(c.series)
	return nil
}

// takeN reserves n series from b and every budget above it; when one of
// them has not that many left it takes nothing and returns that budget.
func (b *Budget) takeN(n int) (refused *Budget) {
	if n <= 0 {
		return nil
	}
	for x := b; x != nil; x = x.parent {
		if x.used.Add(int64(n)) > x.limit {
			x.used.Add(-int64(n))
			for y := b; y != x; y = y.parent {
				y.used.Add(-int64(n))
			}
			return x
		}
	}
	return nil
}
