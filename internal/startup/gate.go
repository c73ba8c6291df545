package startup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

// Defaults of Options.
const (
	// DefaultQuiet: metrics of one kind are reconciled one after another,
	// each in milliseconds, or seconds for a poll or an access review; two
	// seconds without any settling means the rest are stuck (an API error,
	// a review that does not come) and should not hold the others.
	DefaultQuiet = 2 * time.Second
	// DefaultLimit bounds the wait however steadily metrics settle.
	DefaultLimit = 30 * time.Second
)

// ID names one metric object.
type ID struct {
	// Kind is the metric's kind: Metric, ManagedMetric, FederatedMetric or
	// FederatedManagedMetric.
	Kind string
	types.NamespacedName
}

// Options configures a Gate.
type Options struct {
	// Existing returns the metrics present at start. ListMetrics gives it
	// from the manager's client.
	Existing func(ctx context.Context) ([]ID, error)
	// Quiet opens the gate when no metric has settled for this long
	// (default DefaultQuiet).
	Quiet time.Duration
	// Limit opens the gate this long after it started, whatever is left
	// (default DefaultLimit).
	Limit time.Duration
	// Unsettled, if set, reports that metrics cannot settle yet for a
	// reason outside their reconcilers: a sharded replica's view of its
	// share has not settled, and the metrics it will serve are registered
	// once it has. Meanwhile the gate waits past Quiet, up to Limit.
	Unsettled func() bool
}

// Gate is closed until the metrics present at start have settled; see
// the package doc. A nil *Gate is open and ignores Settled.
type Gate struct {
	opts Options
	open chan struct{}

	mu sync.Mutex
	// settled are the metrics settled so far; nil once the gate is open.
	settled map[ID]bool
	// progress has a value when a metric settled since Start last looked.
	progress chan struct{}
}

var _ manager.LeaderElectionRunnable = (*Gate)(nil)

// New returns a closed Gate; add it to the manager, which opens it.
func New(opts Options) (*Gate, error) {
	var errs []error
	if opts.Existing == nil {
		errs = append(errs, errors.New("the Existing option is nil"))
	}
	if opts.Quiet < 0 || opts.Limit < 0 {
		errs = append(errs, fmt.Errorf("the Quiet (%s) and Limit (%s) options may not be negative", opts.Quiet, opts.Limit))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("startup gate options: %w", err)
	}
	if opts.Quiet == 0 {
		opts.Quiet = DefaultQuiet
	}
	if opts.Limit == 0 {
		opts.Limit = DefaultLimit
	}
	return &Gate{opts: opts, open: make(chan struct{}), settled: map[ID]bool{}, progress: make(chan struct{}, 1)}, nil
}

// NeedLeaderElection is true: the gate holds the watches, which only the
// leader runs, and counts from when this replica leads.
func (g *Gate) NeedLeaderElection() bool { return true }

// Open is closed once the gate opens.
func (g *Gate) Open() <-chan struct{} {
	if g == nil {
		closed := make(chan struct{})
		close(closed)
		return closed
	}
	return g.open
}

// Settled records that the reconciler of kind has settled the metric
// name: it is registered on its watch, or has nothing to register.
func (g *Gate) Settled(kind string, name types.NamespacedName) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.settled == nil {
		return // open
	}
	id := ID{Kind: kind, NamespacedName: name}
	if g.settled[id] {
		return
	}
	g.settled[id] = true
	select {
	case g.progress <- struct{}{}:
	default:
	}
}

// Start lists the metrics present, waits until each has settled (or
// until the metrics stop settling, or the limit) and opens the gate; then
// it waits for ctx.
func (g *Gate) Start(ctx context.Context) error {
	log := ctrl.Log.WithName("startup")
	began := time.Now()
	limit, quiet := time.NewTimer(g.opts.Limit), time.NewTimer(g.opts.Quiet)
	defer limit.Stop()
	defer quiet.Stop()
	// The list comes from the manager's cache, which waits for its sync:
	// bounded like the rest of the wait.
	listCtx, cancel := context.WithTimeout(ctx, g.opts.Limit)
	existing, err := g.opts.Existing(listCtx)
	cancel()
	if err != nil && ctx.Err() == nil {
		// Without the list there is nothing to wait for: the watches
		// start as they would without a gate.
		log.Error(err, "Listing the metrics present at start failed; starting the watches at once")
		existing = nil
	}
	quiet.Reset(g.opts.Quiet)
	waiting, gaveUp := g.waiting(existing), ""
	for waiting > 0 && gaveUp == "" {
		select {
		case <-ctx.Done():
			return nil
		case <-g.progress:
			quiet.Reset(g.opts.Quiet)
		case <-quiet.C:
			if g.opts.Unsettled != nil && g.opts.Unsettled() {
				quiet.Reset(g.opts.Quiet)
				break
			}
			gaveUp = "no metric settled for " + g.opts.Quiet.String()
		case <-limit.C:
			gaveUp = "waited the limit of " + g.opts.Limit.String()
		}
		waiting = g.waiting(existing)
	}
	g.mu.Lock()
	g.settled = nil
	g.mu.Unlock()
	close(g.open)
	if waiting > 0 {
		log.Info("Metrics present at start did not all settle; their watches start without them",
			"metricsPresent", len(existing), "unsettled", waiting, "why", gaveUp)
	}
	log.Info("Starting the shared watches", "metricsPresent", len(existing), "waited", time.Since(began).String())
	<-ctx.Done()
	return nil
}

// waiting returns how many of existing have not settled.
func (g *Gate) waiting(existing []ID) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, id := range existing {
		if !g.settled[id] {
			n++
		}
	}
	return n
}

// ListMetrics returns an Options.Existing that lists the four kinds of
// metric through c (the manager's client: from its cache, once synced).
func ListMetrics(c client.Reader) func(ctx context.Context) ([]ID, error) {
	return func(ctx context.Context) ([]ID, error) {
		lists := []struct {
			kind string
			list client.ObjectList
		}{
			{"Metric", &v1alpha1.MetricList{}},
			{"ManagedMetric", &v1alpha1.ManagedMetricList{}},
			{"FederatedMetric", &v1alpha1.FederatedMetricList{}},
			{"FederatedManagedMetric", &v1alpha1.FederatedManagedMetricList{}},
		}
		var ids []ID
		var errs []error
		for _, l := range lists {
			if err := c.List(ctx, l.list); err != nil {
				errs = append(errs, fmt.Errorf("listing %s objects: %w", l.kind, err))
				continue
			}
			err := meta.EachListItem(l.list, func(o runtime.Object) error {
				if obj, ok := o.(client.Object); ok {
					ids = append(ids, ID{Kind: l.kind, NamespacedName: client.ObjectKeyFromObject(obj)})
				}
				return nil
			})
			errs = append(errs, err)
		}
		return ids, errors.Join(errs...)
	}
}
