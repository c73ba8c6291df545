package access

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
	// turns lists the namespaces with waiting scopes, next first.
	turns []string
	byNS  map[string][]queued
	// waiting holds every queued scope, so that none is queued twice.
	waiting map[scope]bool
}

func newFairQueue() fairQueue {
	return fairQueue{byNS: map[string][]queued{}, waiting: map[scope]bool{}}
}

// push queues s and reports whether it was not queued already.
func (q *fairQueue) push(s scope, recheck bool) bool {
	if q.waiting[s] {
		return false
	}
	q.waiting[s] = true
	ns := s.serviceAccount.Namespace
	if len(q.byNS[ns]) == 0 {
		q.turns = append(q.turns, ns)
	}
	q.byNS[ns] = append(q.byNS[ns], queued{scope: s, recheck: recheck})
	return true
}

// pop takes the next namespace's oldest scope; that namespace's next
// scope, if any, waits for its turn behind the other namespaces.
func (q *fairQueue) pop() (queued, bool) {
	if len(q.turns) == 0 {
		return queued{}, false
	}
	ns := q.turns[0]
	q.turns = q.turns[1:]
	list := q.byNS[ns]
	next := list[0]
	if len(list) == 1 {
		delete(q.byNS, ns)
	} else {
		q.byNS[ns] = list[1:]
		q.turns = append(q.turns, ns)
	}
	delete(q.waiting, next.scope)
	return next, true
}
