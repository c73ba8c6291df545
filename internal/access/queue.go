package access

import "github.com/SAP/metrics-operator/internal/turns"

// queued is a scope waiting for review.
type queued struct {
	scope scope
	// recheck is set for the periodic review of a known decision.
	recheck bool
}

// fairQueue orders reviews in turns per tenant namespace (the namespace of
// the metric's ServiceAccount): a namespace with a thousand scopes waiting
// gets one review per turn like a namespace with one, so no tenant can
// hold back another tenant's metrics by naming many ServiceAccounts.
// It is not safe for concurrent use; the Checker's mutex guards it.
type fairQueue struct {
	order *turns.Queue[queued]
	// waiting holds every queued scope, so that none is queued twice.
	waiting map[scope]bool
}

func newFairQueue() fairQueue {
	return fairQueue{
		order:   turns.New(func(q queued) string { return q.scope.serviceAccount.Namespace }),
		waiting: map[scope]bool{},
	}
}

// push queues s and reports whether it was not queued already.
func (q *fairQueue) push(s scope, recheck bool) bool {
	if q.waiting[s] {
		return false
	}
	q.waiting[s] = true
	q.order.Push(queued{scope: s, recheck: recheck})
	return true
}

// pop takes the next namespace's oldest scope; that namespace's next
// scope, if any, waits for its turn behind the other namespaces.
func (q *fairQueue) pop() (queued, bool) {
	if q.order.Len() == 0 {
		return queued{}, false
	}
	next := q.order.Pop()
	delete(q.waiting, next.scope)
	return next, true
}
