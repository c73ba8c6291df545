package access

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

// DefaultRecheckPeriod is how often decisions are reviewed again when
// Options leave it unset.
const DefaultRecheckPeriod = time.Minute

// reviewers is how many SubjectAccessReviews are in flight at once; the
// client's rate limiter bounds how many are sent per second.
const reviewers = 2

// retryAfterError is how long a scope whose first review failed (the API
// server did not answer) waits before it is reviewed again.
const retryAfterError = 2 * time.Second

// ErrPending is returned by Authorize while the metric's access is being
// reviewed. The reconciler leaves the metric as it is: the Checker's
// Source enqueues it again once the decision is made.
var ErrPending = errors.New("the access of the metric's ServiceAccount is being reviewed")

// verbs are what a metric needs on its target: polling lists, event-driven
// metrics share a watch, and a metric may switch modes at any time.
var verbs = []string{"list", "watch"}

// Options configures a Checker.
type Options struct {
	// Client creates the SubjectAccessReviews.
	Client client.Client
	// DefaultServiceAccount is the ServiceAccount, in the metric's own
	// namespace, a metric without spec.serviceAccountName reads as. Empty:
	// such metrics read with the operator's own access.
	DefaultServiceAccount string
	// RecheckPeriod is how often cached decisions are reviewed again
	// (default DefaultRecheckPeriod).
	RecheckPeriod time.Duration
	// NoCrossNamespaceRefs refuses references to objects in another
	// namespace than the referring object's.
	NoCrossNamespaceRefs bool
}

// Request is one metric's need to read a resource.
type Request struct {
	// Kind of the metric ("Metric", ...): a flipped decision is sent to the
	// sources of this kind.
	Kind string
	// Metric is the metric's namespace and name; it reads as a
	// ServiceAccount of this namespace.
	Metric types.NamespacedName
	// ServiceAccountName is the metric's spec.serviceAccountName; empty: the
	// default ServiceAccount, if any.
	ServiceAccountName string
	// Resource is what the metric reads.
	Resource schema.GroupResource
	// Namespace is the namespace it reads; empty: all namespaces, or a
	// cluster-scoped resource.
	Namespace string
	// Part tells apart the resources of a metric that reads several (a
	// ManagedMetric reads one per managed kind), so that each is
	// re-checked; empty for metrics that read one.
	Part string
}

// scope is what one decision is about.
type scope struct {
	serviceAccount types.NamespacedName
	resource       schema.GroupResource
	namespace      string
}

// metricID names a metric across kinds.
type metricID struct {
	kind string
	name types.NamespacedName
}

// Checker authorizes metrics; see the package doc. A nil *Checker allows
// everything.
type Checker struct {
	opts Options

	mu sync.Mutex
	// decisions holds, per scope, nil when allowed or the Forbidden error.
	decisions map[scope]error
	// metrics records the scope each metric last asked for, per part; a
	// scope no metric asks for any more is dropped at the next re-check.
	metrics     map[metricID]map[string]scope
	subscribers map[string][]chan event.GenericEvent
	// queue holds the scopes waiting for a review, taken in turns per
	// tenant namespace; wake tells a reviewer that it is not empty.
	queue fairQueue
	wake  chan struct{}
}

var _ manager.LeaderElectionRunnable = (*Checker)(nil)

// New returns a Checker; add it to the manager so that decisions are
// re-checked.
func New(opts Options) *Checker {
	if opts.RecheckPeriod <= 0 {
		opts.RecheckPeriod = DefaultRecheckPeriod
	}
	return &Checker{
		opts:        opts,
		decisions:   map[scope]error{},
		metrics:     map[metricID]map[string]scope{},
		subscribers: map[string][]chan event.GenericEvent{},
		queue:       newFairQueue(),
		wake:        make(chan struct{}, reviewers),
	}
}

// Authorize returns nil when the metric may read r.Resource in
// r.Namespace, or a Forbidden reason error when its ServiceAccount may not.
// A scope not decided yet is queued for review and ErrPending returned:
// reviews run on the Checker's own workers, so a reconciler never waits
// for them, and a tenant whose metrics name many ServiceAccounts delays
// its own reviews, not the reconciles and reviews of other namespaces.
func (c *Checker) Authorize(_ context.Context, r Request) error {
	if c == nil {
		return nil
	}
	id := metricID{kind: r.Kind, name: r.Metric}
	sa := r.ServiceAccountName
	if sa == "" {
		sa = c.opts.DefaultServiceAccount
	}
	if sa == "" {
		c.ForgetParts(r.Kind, r.Metric, func(part string) bool { return part == r.Part })
		return nil
	}
	s := scope{serviceAccount: types.NamespacedName{Namespace: r.Metric.Namespace, Name: sa},
		resource: r.Resource, namespace: r.Namespace}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.metrics[id] == nil {
		c.metrics[id] = map[string]scope{}
	}
	c.metrics[id][r.Part] = s
	if denied, known := c.decisions[s]; known {
		return denied
	}
	c.enqueueLocked(s, false)
	return ErrPending
}

// enqueueLocked queues s for review unless it is queued already.
func (c *Checker) enqueueLocked(s scope, recheck bool) {
	if c.queue.push(s, recheck) {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// Forget drops what the Checker keeps for a metric that is gone.
func (c *Checker) Forget(kind string, metric types.NamespacedName) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.metrics, metricID{kind: kind, name: metric})
	c.mu.Unlock()
}

// ForgetParts drops the parts of a metric for which drop returns true: the
// resources it no longer reads.
func (c *Checker) ForgetParts(kind string, metric types.NamespacedName, drop func(part string) bool) {
	if c == nil {
		return
	}
	id := metricID{kind: kind, name: metric}
	c.mu.Lock()
	defer c.mu.Unlock()
	for part := range c.metrics[id] {
		if drop(part) {
			delete(c.metrics[id], part)
		}
	}
	if len(c.metrics[id]) == 0 {
		delete(c.metrics, id)
	}
}

// Source returns a controller source that enqueues the metrics of kind
// whose decision flipped at a re-check. Each call makes a new source; a
// reconciler watches its own.
func (c *Checker) Source(kind string) source.Source {
	ch := make(chan event.GenericEvent, 64)
	c.mu.Lock()
	c.subscribers[kind] = append(c.subscribers[kind], ch)
	c.mu.Unlock()
	return source.Channel(ch, &handler.EnqueueRequestForObject{})
}

// NeedLeaderElection is true: only the leader reconciles metrics.
func (c *Checker) NeedLeaderElection() bool { return true }

// Start runs the reviewers and queues every decision for a re-check each
// period until ctx is done.
func (c *Checker) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for range reviewers {
		wg.Go(func() { c.work(ctx) })
	}
	defer wg.Wait()
	t := time.NewTicker(c.opts.RecheckPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.recheck()
		}
	}
}

// recheck queues every scope some metric asks for and forgets the
// decisions of scopes no metric asks for any more.
func (c *Checker) recheck() {
	c.mu.Lock()
	defer c.mu.Unlock()
	inUse := map[scope]bool{}
	for _, parts := range c.metrics {
		for _, s := range parts {
			inUse[s] = true
		}
	}
	for s := range c.decisions {
		if !inUse[s] {
			delete(c.decisions, s)
		}
	}
	for s := range inUse {
		c.enqueueLocked(s, true)
	}
}

// work reviews queued scopes until ctx is done.
func (c *Checker) work(ctx context.Context) {
	for {
		c.mu.Lock()
		q, ok := c.queue.pop()
		c.mu.Unlock()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-c.wake:
				continue
			}
		}
		c.decide(ctx, q)
	}
}

// decide reviews one scope, records the decision and sends the metrics
// that depend on it to their reconcilers: always after a first review,
// after a re-check only when the decision flipped.
func (c *Checker) decide(ctx context.Context, q queued) {
	denied, err := c.review(ctx, q.scope)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Reviewing access failed", "serviceAccount", q.scope.serviceAccount.String(),
			"resource", q.scope.resource.String(), "namespace", q.scope.namespace)
		if !q.recheck {
			// Nobody has a decision to go on yet: try again soon. After a
			// re-check the last decision stands until the next period.
			time.AfterFunc(retryAfterError, func() {
				c.mu.Lock()
				defer c.mu.Unlock()
				if ctx.Err() == nil {
					c.enqueueLocked(q.scope, false)
				}
			})
		}
		return
	}
	c.mu.Lock()
	old, known := c.decisions[q.scope]
	c.decisions[q.scope] = denied
	var ids []metricID
	if !known || (old == nil) != (denied == nil) {
		for id, parts := range c.metrics {
			for _, s := range parts {
				if s == q.scope {
					ids = append(ids, id)
					break
				}
			}
		}
	}
	c.mu.Unlock()
	for _, id := range ids {
		c.notify(ctx, id)
	}
}

func (c *Checker) notify(ctx context.Context, id metricID) {
	c.mu.Lock()
	subs := c.subscribers[id.kind]
	c.mu.Unlock()
	obj := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: id.name.Namespace, Name: id.name.Name}}
	for _, ch := range subs {
		select {
		case ch <- event.GenericEvent{Object: obj}:
		case <-ctx.Done():
			return
		}
	}
}

// review asks the API server whether s's ServiceAccount may list and watch
// s's resource in s's namespace. It returns the Forbidden error to report
// (nil when allowed) or an error when the API server could not be asked.
func (c *Checker) review(ctx context.Context, s scope) (denied, err error) {
	for _, verb := range verbs {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   username(s.serviceAccount),
			Groups: groups(s.serviceAccount),
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: s.namespace, Verb: verb, Group: s.resource.Group, Resource: s.resource.Resource,
			},
		}}
		if err := c.opts.Client.Create(ctx, sar); err != nil {
			return nil, fmt.Errorf("reviewing whether ServiceAccount %s may %s %s: %w",
				s.serviceAccount, verb, s.resource, err)
		}
		if !sar.Status.Allowed {
			return forbidden(s, verb), nil
		}
	}
	return nil, nil
}

// forbidden says who may not do what where, and how to grant it. Every
// name in it comes from the metric's spec or the operator's flags.
func forbidden(s scope, verb string) error {
	who := username(s.serviceAccount)
	if s.namespace == "" {
		return reason.New(v1alpha1.ReasonForbidden,
			"%s, which this metric reads as (spec.serviceAccountName, else the operator's --default-service-account), "+
				"may not %s %s cluster-wide: bind it a ClusterRole allowing list and watch on %s, "+
				"or, for a namespaced kind, set spec.namespace to a namespace it may read",
			who, verb, s.resource, s.resource)
	}
	return reason.New(v1alpha1.ReasonForbidden,
		"%s, which this metric reads as (spec.serviceAccountName, else the operator's --default-service-account), "+
			"may not %s %s in namespace %q: bind it a Role allowing list and watch on %s in that namespace",
		who, verb, s.resource, s.namespace, s.resource)
}

// username is how the API server names a ServiceAccount when it
// authenticates one of its tokens.
func username(sa types.NamespacedName) string {
	return "system:serviceaccount:" + sa.Namespace + ":" + sa.Name
}

// groups are the groups the API server puts a ServiceAccount in: RBAC
// bindings to them apply to the metric as they would to a pod.
func groups(sa types.NamespacedName) []string {
	return []string{"system:serviceaccounts", "system:serviceaccounts:" + sa.Namespace, "system:authenticated"}
}
