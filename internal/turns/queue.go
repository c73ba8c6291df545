package turns

import "k8s.io/client-go/util/workqueue"

// Queue holds items in one FIFO per tenant and takes the tenants in turns.
type Queue[T comparable] struct {
	tenant func(T) string
	// next lists the tenants with items waiting, the next one first.
	next     []string
	byTenant map[string][]T
	n        int
}

var _ workqueue.Queue[string] = (*Queue[string])(nil)

// New returns an empty Queue; tenant names an item's tenant.
func New[T comparable](tenant func(T) string) *Queue[T] {
	return &Queue[T]{tenant: tenant, byTenant: map[string][]T{}}
}

// Push adds item behind its tenant's other items.
func (q *Queue[T]) Push(item T) {
	t := q.tenant(item)
	if len(q.byTenant[t]) == 0 {
		q.next = append(q.next, t)
	}
	q.byTenant[t] = append(q.byTenant[t], item)
	q.n++
}

// Pop takes the oldest item of the tenant whose turn it is; that tenant's
// next item waits behind the other tenants'. The queue must not be empty.
func (q *Queue[T]) Pop() T {
	t := q.next[0]
	q.next = q.next[1:]
	items := q.byTenant[t]
	item := items[0]
	var zero T
	items[0] = zero // no reference kept by the backing array
	if len(items) == 1 {
		delete(q.byTenant, t)
	} else {
		q.byTenant[t] = items[1:]
		q.next = append(q.next, t)
	}
	q.n--
	return item
}

// Len returns the number of items.
func (q *Queue[T]) Len() int { return q.n }

// Touch does nothing: an item added again keeps its place.
func (q *Queue[T]) Touch(T) {}
