// Package turns is a FIFO queue that hands out its items in turns per
// tenant: a tenant with a thousand items waiting gets one per turn, like
// a tenant with one, so no tenant can hold back another's work by
// queueing much of its own. It serves the operator's shared budgets (the
// SubjectAccessReviews, the status writes).
//
// Queue implements client-go's workqueue.Queue, so a workqueue keeps its
// de-duplication, delays and retries and only changes its order. It is not
// safe for concurrent use: the workqueue, or the caller, locks around it.
package turns
