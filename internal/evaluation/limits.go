package evaluation

import (
	"sync"
	"sync/atomic"
)

// Limits bound what one metric's Aggregate may hold, so that a metric
// over them costs a bounded amount of memory and time and no other metric
// is affected. Zero values mean no limit.
type Limits struct {
	// MaxSeries is the most series the metric may have.
	MaxSeries int
	// MaxValueLength is the longest dimension value, in bytes.
	MaxValueLength int
	// Budget is shared by all metrics of the operator; nil is unlimited.
	Budget *Budget
}

// Lower returns l with MaxSeries lowered to maxSeries when that is
// positive and lower: a metric's spec may lower the operator's limit,
// never raise it.
func (l Limits) Lower(maxSeries int) Limits {
	if maxSeries > 0 && (l.MaxSeries <= 0 || maxSeries < l.MaxSeries) {
		l.MaxSeries = maxSeries
	}
	return l
}

// Budget is a number of series shared by aggregates: the operator's
// (--max-series-total) by all of them, a namespace's
// (--max-series-per-namespace) by the metrics of one namespace, within
// the operator's (its parent). It is safe for concurrent use; a nil
// *Budget is unlimited.
type Budget struct {
	limit  int64
	used   atomic.Int64
	parent *Budget
	// flag names the operator flag that sets the limit and scope whose
	// series it counts, for messages.
	flag, scope string
}

// NewBudget returns a budget of limit series for all metrics together;
// limit <= 0 returns nil (unlimited).
func NewBudget(limit int) *Budget {
	if limit <= 0 {
		return nil
	}
	return &Budget{limit: int64(limit), flag: "--max-series-total", scope: "all metrics together"}
}

// Used returns the number of series held by the budget's aggregates.
func (b *Budget) Used() int {
	if b == nil {
		return 0
	}
	return int(b.used.Load())
}

// Limit returns the budget's size; 0 for a nil (unlimited) budget.
func (b *Budget) Limit() int {
	if b == nil {
		return 0
	}
	return int(b.limit)
}

// take reserves one series from b and every budget above it; when one of
// them has none left it takes nothing and returns that budget.
func (b *Budget) take() (refused *Budget) {
	for x := b; x != nil; x = x.parent {
		if x.used.Add(1) > x.limit {
			x.used.Add(-1)
			for y := b; y != x; y = y.parent {
				y.used.Add(-1)
			}
			return x
		}
	}
	return nil
}

// takeAnyway reserves one series even beyond the budgets: for an object
// moving out of a series it alone held, whose series is given back at
// once.
func (b *Budget) takeAnyway() {
	for x := b; x != nil; x = x.parent {
		x.used.Add(1)
	}
}

func (b *Budget) give(n int) {
	if n <= 0 {
		return
	}
	for x := b; x != nil; x = x.parent {
		x.used.Add(-int64(n))
	}
}

// Budgets hands out one Budget per namespace, each within the operator's
// budget, so that the metrics of one namespace (one tenant) cannot use up
// the series of all the others. It is safe for concurrent use.
type Budgets struct {
	perNamespace int
	total        *Budget
	mu           sync.Mutex
	namespaces   map[string]*Budget
}

// NewBudgets returns the budgets of perNamespace series for each
// namespace within total series for all; a limit <= 0 is no limit.
func NewBudgets(perNamespace, total int) *Budgets {
	return &Budgets{perNamespace: perNamespace, total: NewBudget(total), namespaces: map[string]*Budget{}}
}

// For returns the budget of the metrics in namespace; nil when neither
// limit is set.
func (b *Budgets) For(namespace string) *Budget {
	if b.perNamespace <= 0 {
		return b.total
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	nb := b.namespaces[namespace]
	if nb == nil {
		nb = &Budget{limit: int64(b.perNamespace), parent: b.total, flag: "--max-series-per-namespace",
			scope: "the metrics of namespace " + namespace}
		b.namespaces[namespace] = nb
	}
	return nb
}

// Total returns the budget of all metrics together (nil: unlimited).
func (b *Budgets) Total() *Budget { return b.total }
