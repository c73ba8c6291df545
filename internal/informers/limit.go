package informers

import (
	"errors"
	"time"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/remotelimit"
)

// A watch holds at most maxObjects objects (Options.MaxObjects, the
// operator's --max-objects-per-watch): an API server, a remote one a
// tenant controls above all, could otherwise send objects without end
// and the per-object state of the watch's metrics would grow until the
// operator runs out of memory, taking /metrics down for every tenant.
// Counted are
//
//   - the objects of each list, streamed or paged, as they arrive; a
//     page is counted before any of its objects is applied, so a server
//     that ignores limit and answers with one huge page has none of it
//     applied;
//   - while watching, the objects some metric of the watch holds
//     (events.Handler.Held), which deletions of objects never sent cannot
//     lower.
//
// Over the limit the watch stops: its metrics are failed with
// ObjectLimitExceeded and export nothing, what they held is dropped, and
// the watch is started again no sooner than Options.RetryAfterObjectLimit
// later (when a metric of it is next reconciled), so that a watch over
// the limit lists once a minute rather than in a loop. Its next list
// within the limit brings the metrics back. Other watches are untouched.
//
// A remote cluster's response over its size limit (internal/remotelimit,
// the operator's --max-remote-response-bytes) stops the watch the same
// way, its metrics reporting ResponseTooLarge: a server that answered one
// LIST page or watch event too large will most likely answer the next
// alike, and listing it in a loop would cost the limit's worth of memory
// every time.

// defaultRetryAfterObjectLimit is Options.RetryAfterObjectLimit's
// default.
const defaultRetryAfterObjectLimit = time.Minute

// errObjectLimit ends a list that went over the limit.
var errObjectLimit = errors.New("the watch went over its object limit")

// over reports whether n objects are more than the watch may hold.
func (i *informer) over(n int) bool { return i.maxObjects > 0 && n > i.maxObjects }

// trip marks the watch over its limit and ends its ListAndWatch; run
// then fails it (failOverLimit).
func (i *informer) trip() {
	if i.overLimit.Swap(true) {
		return
	}
	i.state.Lock()
	defer i.state.Unlock()
	if i.stopAttempt != nil {
		i.stopAttempt()
	}
}

// responseTooLarge is the remotelimit.OnExceeded of the watch's
// requests: it stops the watch like too many objects do.
func (i *informer) responseTooLarge(err *remotelimit.Error) {
	if i.overLimit.Load() {
		return // stopping already, for its objects
	}
	i.tooLarge.CompareAndSwap(nil, err)
	i.trip()
}

// overLimitErr returns the error the watch's metrics report once it went
// over its limit, nil before.
func (i *informer) overLimitErr() error {
	if !i.overLimit.Load() {
		return nil
	}
	what := watchedWhat(i.key)
	if tl := i.tooLarge.Load(); tl != nil {
		return reason.New(v1alpha1.ReasonResponseTooLarge,
			"watching %s: %s: nothing of it is used and the watch's metrics export nothing; it is tried again every %s and "+
				"the metrics come back by themselves once the cluster answers within the limit "+
				"(or ask the platform admin to raise the flag)",
			what, tl.Error(), i.retryAfterLimit)
	}
	if i.tenantOver.Load() {
		return i.tenantOverErr()
	}
	return reason.New(v1alpha1.ReasonObjectLimitExceeded,
		"the watch of %s in cluster %s has more than %d objects, the limit set by the operator's --max-objects-per-watch: "+
			"its metrics export nothing; it is tried again every %s and the metrics come back by themselves once it has at most %d "+
			"(or raise the flag and restart the operator)",
		what, i.key.Cluster, i.maxObjects, i.retryAfterLimit, i.maxObjects)
}

// failOverLimit fails the watch's metrics with err, drops what they hold,
// and leaves the watch stopped for retryAfterLimit.
func (i *informer) failOverLimit(err error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.state.Lock()
	i.stopped, i.failedAt, i.failErr, i.synced = true, time.Now(), err, false
	i.failWait = i.retryAfterLimit
	i.state.Unlock()
	i.handler.Fail(i.key, err)
	i.handler.Drop(i.key)
	i.charge(0)
}
