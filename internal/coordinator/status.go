package coordinator

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/turns"
)

// newStatusQueue returns the queue of metrics whose status may need a
// write. Metrics are taken in turns per namespace: the writes share one
// budget (StatusWritesPerSecond), and in arrival order a tenant with
// thousands of metrics wanting writes would hold a neighbour's Ready
// condition back for minutes.
func newStatusQueue() workqueue.TypedRateLimitingInterface[Key] {
	const name = "coordinator_status"
	byNamespace := turns.New(func(k Key) string { return k.Namespace })
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[Key](500*time.Millisecond, time.Minute),
		workqueue.TypedRateLimitingQueueConfig[Key]{Name: name,
			DelayingQueue: workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[Key]{Name: name,
				Queue: workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[Key]{Name: name, Queue: byNamespace})})})
}

// processStatus handles one key of the status queue; false means stop.
func (c *Coordinator) processStatus(ctx context.Context) bool {
	key, quit := c.status.Get()
	if quit {
		return false
	}
	defer c.status.Done(key)

	writer := c.opts.StatusWriters[key.Kind]
	if writer == nil {
		return true
	}
	s, overwrites, wait, ok := c.statusDue(key)
	if !ok {
		if wait > 0 {
			c.status.AddAfter(key, wait)
		}
		return true
	}
	if err := c.writes.Wait(ctx); err != nil {
		return true // shutting down: the queue says so next
	}
	if err := writer.WriteStatus(ctx, key, s); err != nil {
		statusWritesTotal.WithLabelValues("failure").Inc()
		ctrl.LoggerFrom(ctx).Error(err, "Writing status failed", "metric", key.String())
		c.status.AddRateLimited(key)
		return true
	}
	statusWritesTotal.WithLabelValues("success").Inc()
	c.status.Forget(key)
	c.mu.Lock()
	st, ok := c.metrics[key]
	if ok {
		countNotReady(key.Kind, st.written, &s)
		st.written, st.lastStatus = &s, time.Now()
		st.overwritesWritten = overwrites
	}
	c.mu.Unlock()
	if !ok {
		// Removed while its status was written: Remove's forgetStatus may
		// have run before the writer kept what it wrote.
		c.forgetStatus(key)
	}
	return true
}

// statusDue computes the metric's status and says whether to write it now:
// a changed Ready condition at once, a changed observation at most every
// StatusInterval, an unchanged status never unless another writer changed
// the stored one (then at most every StatusInterval). It also returns the
// metric's count of overwrites, which a write brings up to date. The
// series are read after mu is released: the event path needs mu for every
// change it reports.
func (c *Coordinator) statusDue(key Key) (Status, uint64, time.Duration, bool) {
	c.mu.Lock()
	st, ok := c.metrics[key]
	if !ok {
		c.mu.Unlock()
		return Status{}, 0, 0, false
	}
	st.statusPending = false
	st.quiet.Store(false)
	overwrites := st.overwrites
	overwritten := overwrites != st.overwritesWritten
	in := statusInput{
		update: st.update, observed: time.Unix(0, st.observed.Load()), evalErr: st.evalErr, errGen: st.errGen,
		sinkErr: st.sinkErr, exportErr: st.exportErr,
	}
	in.owner, in.ownerKey = c.ownerLocked(key)
	written, lastStatus := st.written, st.lastStatus
	c.mu.Unlock()

	s := computeStatus(in)
	if w := written; w != nil {
		sameCondition := w.Ready.Status == s.Ready.Status && w.Ready.Reason == s.Ready.Reason &&
			w.Ready.Message == s.Ready.Message && w.Generation == s.Generation && w.Mode == s.Mode
		if !overwritten && sameCondition && reflect.DeepEqual(w.Dimensions, s.Dimensions) &&
			w.Total == s.Total && w.Series == s.Series && w.Timestamp.Equal(s.Timestamp) {
			return s, overwrites, 0, false
		}
		if since := time.Since(lastStatus); sameCondition && since < c.opts.StatusInterval {
			return s, overwrites, c.opts.StatusInterval - since, false
		}
	}
	return s, overwrites, 0, true
}

// statusInput is what a status is computed from, copied from a metric's
// state under the coordinator's lock.
type statusInput struct {
	update             *Update
	observed           time.Time
	evalErr            error
	errGen             int64
	sinkErr, exportErr error
	owner              bool
	ownerKey           string
}

func computeStatus(st statusInput) Status {
	var s Status
	var warning string
	if u := st.update; u != nil {
		s.Generation, s.Mode = u.Generation, u.Mode
	}
	// A withdrawn metric has no current observation: the status keeps the
	// last one written, with its time.
	if u := st.update; u != nil && st.evalErr == nil {
		s.Observed, s.Timestamp = true, st.observed
		snap := u.Source.Snapshot()
		for _, cs := range snap {
			for _, se := range cs.Series {
				s.Total += se.Value
				s.Series++
			}
		}
		if s.Series == 1 {
			for _, cs := range snap {
				for _, se := range cs.Series {
					for _, d := range se.Dimensions {
						s.Dimensions = append(s.Dimensions, v1alpha1.Dimension{Name: d.Name, Value: d.Value})
					}
				}
			}
		}
		warning = u.Source.Warning()
	}
	if st.evalErr != nil && st.errGen > s.Generation {
		s.Generation = st.errGen
	}
	c := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: s.Generation}
	switch {
	case st.evalErr != nil:
		c.Reason, c.Message = reason.Of(st.evalErr, v1alpha1.ReasonTargetNotFound), st.evalErr.Error()
	case st.update != nil && !st.owner:
		c.Reason = v1alpha1.ReasonDuplicateName
		c.Message = fmt.Sprintf("metric name %q is already exported by the older %s; "+
			"this metric is not exported until you give it another spec.name or that one goes",
			st.update.Name, st.ownerKey)
	case st.sinkErr != nil:
		c.Reason, c.Message = reason.Of(st.sinkErr, v1alpha1.ReasonDataSinkNotReady), st.sinkErr.Error()
	case st.exportErr != nil:
		c.Reason = v1alpha1.ReasonExportFailed
		c.Message = "pushing to DataSink " + st.update.Sink.String() + " failed (retrying with backoff): " + st.exportErr.Error()
	case degraded(st.update) != nil:
		err := degraded(st.update)
		c.Reason, c.Message = reason.Of(err, v1alpha1.ReasonClusterUnreachable), err.Error()
	case st.update != nil:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonReady
		c.Message = "exporting " + strconv.Itoa(s.Series) + " series"
		if warning != "" {
			c.Message += "; " + warning
		}
	default:
		c.Reason, c.Message = v1alpha1.ReasonPending, "waiting for the first evaluation"
	}
	s.Ready = c
	return s
}

// degraded returns why u's Source is exported in part, if it says so.
func degraded(u *Update) error {
	if u == nil {
		return nil
	}
	if d, ok := u.Source.(DegradedSource); ok {
		return d.Degraded()
	}
	return nil
}
