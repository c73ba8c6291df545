package access

import (
	"context"
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
	// metrics records the scope each metric last asked for; a scope no
	// metric asks for any more is dropped at the next re-check.
	metrics     map[metricID]scope
	subscribers map[string][]chan event.GenericEvent
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
		metrics:     map[metricID]scope{},
		subscribers: map[string][]chan event.GenericEvent{},
	}
}

// Authorize returns nil when the metric may read r.Resource in
// r.Namespace, a Forbidden reason error when its ServiceAccount may not,
// or another error when the API server could not be asked (retry).
func (c *Checker) Authorize(ctx context.Context, r Request) error {
	if c == nil {
		return nil
	}
	id := metricID{kind: r.Kind, name: r.Metric}
	sa := r.ServiceAccountName
	if sa == "" {
		sa = c.opts.DefaultServiceAccount
	}
	if sa == "" {
		c.Forget(r.Kind, r.Metric)
		return nil
	}
	s := scope{serviceAccount: types.NamespacedName{Namespace: r.Metric.Namespace, Name: sa},
		resource: r.Resource, namespace: r.Namespace}
	c.mu.Lock()
	c.metrics[id] = s
	denied, known := c.decisions[s]
	c.mu.Unlock()
	if known {
		return denied
	}
	denied, err := c.review(ctx, s)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.decisions[s] = denied
	c.mu.Unlock()
	return denied
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

// Start re-checks the decisions every period until ctx is done.
func (c *Checker) Start(ctx context.Context) error {
	t := time.NewTicker(c.opts.RecheckPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.recheck(ctx)
		}
	}
}

// recheck reviews every scope some metric asks for and sends the metrics
// of the scopes whose decision flipped to their reconcilers.
func (c *Checker) recheck(ctx context.Context) {
	c.mu.Lock()
	inUse := map[scope][]metricID{}
	for id, s := range c.metrics {
		inUse[s] = append(inUse[s], id)
	}
	for s := range c.decisions {
		if _, ok := inUse[s]; !ok {
			delete(c.decisions, s)
		}
	}
	c.mu.Unlock()
	for s, ids := range inUse {
		denied, err := c.review(ctx, s)
		if err != nil {
			// The last decision stands until the API server answers.
			ctrl.LoggerFrom(ctx).Error(err, "Re-checking access failed", "serviceAccount", s.serviceAccount.String(),
				"resource", s.resource.String(), "namespace", s.namespace)
			continue
		}
		c.mu.Lock()
		old, known := c.decisions[s]
		c.decisions[s] = denied
		c.mu.Unlock()
		if known && (old == nil) == (denied == nil) {
			continue
		}
		for _, id := range ids {
			c.notify(ctx, id)
		}
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
