package informers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/pager"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusterfault"
	"github.com/SAP/metrics-operator/internal/events"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/remotelimit"
)

// Clients reach one cluster.
type Clients struct {
	Dynamic  dynamic.Interface
	Metadata metadata.Interface
	// ReportUnreachable makes a watch that cannot reach its API server
	// withdraw its metrics (ClusterUnreachable; Forbidden for a 401) until
	// it can again, and name the remote cluster's RBAC when a resource is
	// refused. For remote
	// clusters: the operator's own API server being down is not a metric's
	// problem, and its metrics keep their last values meanwhile.
	ReportUnreachable bool
}

// Options configures a Manager.
type Options struct {
	Registry *registry.Registry
	Handler  *events.Handler
	// Clients returns the clients of a cluster.
	Clients func(cluster string) (*Clients, error)
	// RetryAfterFailure is how long a failed watch waits before Ensure
	// starts it again (default 10s).
	RetryAfterFailure time.Duration
	// ListPageSize is the number of objects one LIST page asks for
	// (default 1000).
	ListPageSize int64
	// MaxObjects bounds the objects one watch may hold (see limit.go);
	// zero or negative: no bound.
	MaxObjects int
	// RetryAfterObjectLimit is how long a watch stopped by MaxObjects
	// waits before Ensure starts it again (default 1m): each try lists up
	// to MaxObjects objects, too many to try as often as other failures.
	RetryAfterObjectLimit time.Duration
	// Registered, when set, holds the watches back after Start until it is
	// closed: the operator closes it once its reconcilers have registered
	// the metrics present at start (internal/startup), so each watch
	// starts with all of them subscribed and its one initial LIST fills
	// them all. Started at once instead, a watch lists for the first
	// metric while the others register, and those need a second LIST.
	Registered <-chan struct{}
	// TenantOf names the tenant a watch of a cluster is charged to (see
	// tenant.go), "" for a cluster no tenant controls; nil: none is.
	TenantOf func(cluster string) string
	// MaxWatchesPerTenant bounds the watches of one tenant; zero or
	// negative: no bound.
	MaxWatchesPerTenant int
	// MaxObjectsPerTenant bounds the objects the watches of one tenant
	// hold together; zero or negative: no bound.
	MaxObjectsPerTenant int
}

// Manager runs the shared watches.
type Manager struct {
	opts Options

	mu        sync.Mutex
	ctx       context.Context // set by Start; nil before
	informers map[registry.InformerKey]*informer
	// pending holds the watches Ensured before Start has started the
	// watches (before Start, or while Options.Registered is open); Start
	// starts them.
	pending map[registry.InformerKey]schema.GroupVersionKind
	// tenants holds what each tenant's watches hold together, by name.
	tenants map[string]*tenant
	wg      sync.WaitGroup
}

var (
	_ manager.Runnable               = (*Manager)(nil)
	_ manager.LeaderElectionRunnable = (*Manager)(nil)
)

// New returns a Manager; add it to the controller-runtime manager.
func New(opts Options) (*Manager, error) {
	var errs []error
	if opts.Registry == nil {
		errs = append(errs, errors.New("the Registry option is nil"))
	}
	if opts.Handler == nil {
		errs = append(errs, errors.New("the Handler option is nil"))
	}
	if opts.Clients == nil {
		errs = append(errs, errors.New("the Clients option is nil"))
	}
	if opts.RetryAfterFailure < 0 {
		errs = append(errs, fmt.Errorf("RetryAfterFailure is negative (%s)", opts.RetryAfterFailure))
	}
	if opts.RetryAfterObjectLimit < 0 {
		errs = append(errs, fmt.Errorf("RetryAfterObjectLimit is negative (%s)", opts.RetryAfterObjectLimit))
	}
	if opts.ListPageSize < 0 {
		errs = append(errs, fmt.Errorf("ListPageSize is negative (%d)", opts.ListPageSize))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("informer manager options: %w", err)
	}
	if opts.RetryAfterFailure == 0 {
		opts.RetryAfterFailure = 10 * time.Second
	}
	if opts.ListPageSize == 0 {
		opts.ListPageSize = defaultListPageSize
	}
	if opts.RetryAfterObjectLimit == 0 {
		opts.RetryAfterObjectLimit = defaultRetryAfterObjectLimit
	}
	return &Manager{opts: opts, informers: map[registry.InformerKey]*informer{},
		pending: map[registry.InformerKey]schema.GroupVersionKind{}, tenants: map[string]*tenant{}}, nil
}

// NeedLeaderElection is true: only the leader watches and exports.
func (m *Manager) NeedLeaderElection() bool { return true }

// Start starts the watches Ensured before it (once Options.Registered is
// closed, when set), blocks until ctx is done, then stops every watch and
// waits for them.
func (m *Manager) Start(ctx context.Context) error {
	if m.opts.Registered != nil {
		select {
		case <-m.opts.Registered:
		case <-ctx.Done():
			return nil
		}
	}
	m.mu.Lock()
	m.ctx = ctx
	for key, gvk := range m.pending {
		if len(m.opts.Registry.Interested(key)) == 0 {
			continue // released meanwhile
		}
		if err := m.ensureLocked(key, gvk, nil); err != nil {
			m.opts.Handler.Fail(key, err)
		}
	}
	clear(m.pending)
	m.mu.Unlock()
	<-ctx.Done()
	m.mu.Lock()
	for key, inf := range m.informers {
		inf.cancel()
		delete(m.informers, key)
	}
	m.mu.Unlock()
	m.wg.Wait()
	activeInformers.Set(0)
	return nil
}

// Ensure makes sure a watch for key runs (with full objects when a
// subscriber needs them) and that sub, registered on key, gets the
// current objects: from the watch's initial list if it is starting, else
// from a LIST made for it. Before the Manager started its watches (a
// metric reconciled before the manager runs its Runnables, by a replica
// waiting for leadership, or while Options.Registered holds the watches
// back), the watch is remembered and Start starts it.
func (m *Manager) Ensure(key registry.InformerKey, gvk schema.GroupVersionKind, sub *registry.Subscription) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil {
		m.pending[key] = gvk
		return nil
	}
	return m.ensureLocked(key, gvk, sub)
}

// ensureLocked is Ensure once started; sub may be nil when no particular
// metric asks (Start starting the pending watches).
func (m *Manager) ensureLocked(key registry.InformerKey, gvk schema.GroupVersionKind, sub *registry.Subscription) error {
	full := m.opts.Registry.NeedsFullObjects(key)
	inf := m.informers[key]
	if inf != nil {
		if err := inf.failedRecently(); err != nil {
			// Let the user see why, but do not hammer the API server.
			if sub != nil {
				sub.Fail(err)
			}
			return nil
		}
		if inf.running() && (!full || inf.full) {
			if sub != nil {
				inf.join(sub)
			}
			return nil
		}
	}
	if inf != nil {
		// Failed long enough ago, or metadata-only while a subscriber now
		// needs full objects: replace it. The new watch's initial list
		// refills every subscriber, so no metric sees a gap.
		inf.cancel()
	}
	// A watch replaced here keeps its place within its tenant's limit.
	t, err := m.admitLocked(key)
	if err != nil {
		m.opts.Handler.Fail(key, err)
		return nil
	}
	clients, err := m.opts.Clients(key.Cluster)
	if err != nil {
		return err
	}
	inf = newInformer(key, gvk, full, clients, m.opts.Handler, m.opts.Registry)
	inf.pageSize = m.opts.ListPageSize
	inf.maxObjects = m.opts.MaxObjects
	inf.tenant, inf.maxTenantObjects = t, m.opts.MaxObjectsPerTenant
	inf.retryAfter, inf.retryAfterLimit = m.opts.RetryAfterFailure, m.opts.RetryAfterObjectLimit
	m.informers[key] = inf
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		inf.run(m.ctx)
	}()
	activeInformers.Set(float64(len(m.informers)))
	return nil
}

// Release stops the watch of key when no metric is subscribed to it.
func (m *Manager) Release(key registry.InformerKey) {
	if len(m.opts.Registry.Interested(key)) > 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.opts.Registry.Interested(key)) == 0 {
		delete(m.pending, key)
	}
	if inf, ok := m.informers[key]; ok && len(m.opts.Registry.Interested(key)) == 0 {
		inf.cancel()
		delete(m.informers, key)
		activeInformers.Set(float64(len(m.informers)))
	}
}

// RestartCluster starts every watch of cluster again through the
// cluster's current clients (its connection was rebuilt with new
// credentials or a new endpoint). Each restarted watch's initial list
// replaces what its metrics hold, so none shows a gap.
func (m *Manager) RestartCluster(cluster string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil {
		return
	}
	for key, inf := range m.informers {
		if key.Cluster != cluster {
			continue
		}
		inf.cancel()
		delete(m.informers, key)
		if len(m.opts.Registry.Interested(key)) == 0 {
			continue
		}
		if err := m.ensureLocked(key, inf.gvk, nil); err != nil {
			m.opts.Handler.Fail(key, err)
		}
	}
	activeInformers.Set(float64(len(m.informers)))
}

// ReleaseCluster stops every watch of cluster, subscribed or not: its
// connection was closed. Metrics still subscribed learn it from their
// reconciler, which can no longer acquire the connection.
func (m *Manager) ReleaseCluster(cluster string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, inf := range m.informers {
		if key.Cluster == cluster {
			inf.cancel()
			delete(m.informers, key)
		}
	}
	for key := range m.pending {
		if key.Cluster == cluster {
			delete(m.pending, key)
		}
	}
	activeInformers.Set(float64(len(m.informers)))
}

// Active returns the keys of the running watches.
func (m *Manager) Active() []registry.InformerKey {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]registry.InformerKey, 0, len(m.informers))
	for k, inf := range m.informers {
		if inf.running() {
			keys = append(keys, k)
		}
	}
	return keys
}

// informer is one shared watch.
type informer struct {
	key      registry.InformerKey
	gvk      schema.GroupVersionKind
	full     bool
	pageSize int64
	clients  *Clients
	handler  *events.Handler
	registry *registry.Registry

	// apiVersion and kind are gvk's, boxed once for every metadata-only
	// object toMap gives them.
	apiVersion, kind any

	// maxObjects bounds the objects the watch holds (limit.go); <= 0: no
	// bound.
	maxObjects int
	// tenant is charged with the watch's objects (tenant.go), nil for a
	// watch no tenant controls; maxTenantObjects bounds its sum.
	tenant           *tenant
	maxTenantObjects int
	// charged is what the watch last charged its tenant with.
	charged atomic.Int64
	// tenantOver is set when the watch took its tenant over
	// maxTenantObjects: why it stops.
	tenantOver atomic.Bool
	// retryAfter and retryAfterLimit are how long the watch stays failed
	// before Ensure replaces it: after any failure, after going over
	// maxObjects.
	retryAfter, retryAfterLimit time.Duration

	ctx    context.Context
	cancel context.CancelFunc

	// mu serialises event delivery with the LISTs made for joining
	// subscribers, so that a joiner never misses or reorders an event.
	mu    sync.Mutex
	fills sync.WaitGroup // the filler, listing for joining metrics

	// state guards what Ensure asks of the watch (synced, stopped,
	// failed), apart from mu, which a LIST holds for as long as it takes:
	// a metric registering must not wait for the list of the metrics
	// before it. Taken after mu where both are.
	state    sync.Mutex
	synced   bool
	failedAt time.Time
	failErr  error
	failWait time.Duration // how long after failedAt the watch may start again
	stopped  bool
	// stopAttempt ends the current ListAndWatch.
	stopAttempt context.CancelFunc

	fillMu    sync.Mutex
	filling   bool      // a filler runs
	fillAgain bool      // more metrics joined while it listed
	listedAt  time.Time // the last successful list of the watch (under mu)
	// pageOnly: the API server refused a streamed list; list page by page
	// (under mu).
	pageOnly bool

	// overLimit is set once the watch went over maxObjects, or its
	// cluster sent a response over its size limit: from then on it
	// applies nothing and stops.
	overLimit atomic.Bool
	// tooLarge is the response over its size limit, if that was why.
	tooLarge atomic.Pointer[remotelimit.Error]

	// unreachable is set while the watch's metrics are withdrawn because
	// a remote API server cannot be reached (Clients.ReportUnreachable).
	unreachable atomic.Bool
}

func newInformer(key registry.InformerKey, gvk schema.GroupVersionKind, full bool, c *Clients, h *events.Handler, r *registry.Registry) *informer {
	ctx, cancel := context.WithCancel(context.Background())
	apiVersion, kind := gvk.ToAPIVersionAndKind()
	return &informer{key: key, gvk: gvk, full: full, clients: c, handler: h, registry: r, ctx: ctx, cancel: cancel,
		apiVersion: apiVersion, kind: kind}
}

func (i *informer) running() bool {
	i.state.Lock()
	defer i.state.Unlock()
	return !i.stopped && i.ctx.Err() == nil
}

// isSynced reports whether the watch has listed since it started.
func (i *informer) isSynced() bool {
	i.state.Lock()
	defer i.state.Unlock()
	return i.synced
}

// setSynced records whether the watch has listed; the caller holds mu.
func (i *informer) setSynced(v bool) {
	i.state.Lock()
	defer i.state.Unlock()
	i.synced = v
}

// failedRecently returns the error the watch failed with, if it may not
// start again yet.
func (i *informer) failedRecently() error {
	i.state.Lock()
	defer i.state.Unlock()
	if i.stopped && !i.failedAt.IsZero() && time.Since(i.failedAt) < i.failWait {
		return i.failErr
	}
	return nil
}

// join gives sub the current objects if the watch has synced; otherwise
// the initial list will.
func (i *informer) join(sub *registry.Subscription) {
	// sub is registered: a list that has not set synced yet sees it
	// unsynced when it ends, and asks for a fill.
	if i.isSynced() && !sub.Synced() {
		i.requestFill()
	}
}

// defaultListPageSize bounds what one list page holds in memory. Measured at
// 100,000 ConfigMaps with 10 metrics: 500 per page synced in 15 s at
// 140 MiB RSS, 5,000 in 4 s at 191 MiB, 1,000 in 5 s at 134 MiB.
const defaultListPageSize = 1000

// fillBatchDelay lets metrics created together (a manifest of a hundred,
// an operator restart) join in one LIST rather than one each.
const fillBatchDelay = 50 * time.Millisecond

// requestFill makes sure one filler runs for the informer: it lists once
// for every subscriber not yet synced, and again while more arrive.
func (i *informer) requestFill() {
	i.fillMu.Lock()
	defer i.fillMu.Unlock()
	if i.filling {
		i.fillAgain = true
		return
	}
	i.filling = true
	i.fills.Go(i.fillLoop)
}

func (i *informer) fillLoop() {
	for {
		select {
		case <-i.ctx.Done():
		case <-time.After(fillBatchDelay):
		}
		i.fillMu.Lock()
		i.fillAgain = false
		i.fillMu.Unlock()

		i.fillOnce()

		i.fillMu.Lock()
		if !i.fillAgain || i.ctx.Err() != nil {
			i.filling = false
			i.fillMu.Unlock()
			return
		}
		i.fillMu.Unlock()
	}
}

// fillOnce lists once for every subscriber that joined after the watch
// synced, while the watch's events wait.
func (i *informer) fillOnce() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !i.isSynced() || i.ctx.Err() != nil {
		return
	}
	var subs []*registry.Subscription
	for _, s := range i.registry.Interested(i.key) {
		if !s.Synced() {
			subs = append(subs, s)
		}
	}
	if len(subs) == 0 {
		return
	}
	log := ctrl.Log.WithName("informers").WithValues(i.key.LogValues()...)
	start := time.Now()
	n, _, err := i.pageLocked(i.ctx, subs, true)
	if errors.Is(err, errNobodyListening) {
		log.V(1).Info("Listing for joining metrics stopped: all of them are gone", "metrics", len(subs), "objects", n)
		return
	}
	if errors.Is(err, errObjectLimit) || i.overLimit.Load() {
		i.trip()
		return
	}
	if err != nil {
		log.Error(err, "Listing for joining metrics failed", "metrics", len(subs))
		for _, s := range subs {
			s.Fail(classify(i.key, err, i.clients.ReportUnreachable))
		}
		return
	}
	listsTotal.Inc()
	log.V(1).Info("Metrics joined a running informer", "metrics", len(subs), "objects", n, "duration", time.Since(start).String())
}

// errNobodyListening stops a list made for metrics that are all gone.
var errNobodyListening = errors.New("no metric waits for this list any more")

// pageLocked lists the resource page by page and applies each object to
// subs as it arrives, so a list of any size costs one page of memory. It
// returns the number of objects and the list's resource version. With
// forSubs, the list exists only for subs: once every one of them is
// dropped or disabled it stops before the next page with
// errNobodyListening, rather than reading the rest for nobody.
func (i *informer) pageLocked(ctx context.Context, subs []*registry.Subscription, forSubs bool) (int, string, error) {
	relist := i.handler.BeginRelist(i.key, subs)
	rv, n, fetched := "", 0, 0
	p := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		if forSubs && !relist.Listening() {
			return nil, errNobodyListening
		}
		list, err := i.listPage(ctx, opts)
		if err == nil {
			// Counted before any object of the page is applied: a page
			// over the limit (a server ignoring limit) never is.
			fetched += meta.LenList(list)
			if i.over(fetched) {
				return nil, errObjectLimit
			}
			// A fill reads the objects the watch holds already, for the
			// metrics joining it; only the watch's own list charges them.
			if !forSubs && i.charge(fetched) {
				return nil, errObjectLimit
			}
		}
		if err == nil && rv == "" {
			if acc, aerr := meta.ListAccessor(list); aerr == nil {
				rv = acc.GetResourceVersion() // every page of one list shares it
			}
		}
		return list, err
	})
	p.PageSize = i.pageSize
	// ResourceVersion "" reads consistently and pages; "0" would let the
	// API server answer from its cache in one response of every object.
	err := p.EachListItem(ctx, metav1.ListOptions{}, func(o runtime.Object) error {
		if obj := i.toMap(o); obj != nil {
			relist.Add(obj)
			n++
		}
		return nil
	})
	if err != nil {
		return n, "", err
	}
	relist.Finish()
	return n, rv, nil
}

func (i *informer) listPage(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
	ns, gvr := i.key.Namespace, i.key.GVR
	ctx = remotelimit.OnExceeded(ctx, i.responseTooLarge)
	if i.full {
		return i.clients.Dynamic.Resource(gvr).Namespace(ns).List(ctx, o)
	}
	return i.clients.Metadata.Resource(gvr).Namespace(ns).List(ctx, o)
}

func (i *informer) watch(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	ns, gvr := i.key.Namespace, i.key.GVR
	// The watch's events are decoded in another goroutine, which passes
	// on only the text of an error.
	ctx = remotelimit.OnExceeded(ctx, i.responseTooLarge)
	if i.full {
		return i.clients.Dynamic.Resource(gvr).Namespace(ns).Watch(ctx, o)
	}
	return i.clients.Metadata.Resource(gvr).Namespace(ns).Watch(ctx, o)
}

// listWatch is what the Reflector lists and watches through. Its List
// streams every object into the subscribers itself (listLocked) and hands
// the Reflector an empty list carrying only the resource version to watch
// from, so the Reflector never holds the objects; it asks not to be given
// WatchList semantics, which would gather them in a temporary store.
type listWatch struct{ i *informer }

var (
	_ cache.ListerWatcher            = listWatch{}
	_ cache.ListerWatcherWithContext = listWatch{}
)

func (lw listWatch) ListWithContext(ctx context.Context, _ metav1.ListOptions) (runtime.Object, error) {
	i := lw.i
	i.mu.Lock()
	defer i.mu.Unlock()
	start := time.Now()
	n, rv, err := i.listLocked(ctx, i.registry.Interested(i.key))
	if errors.Is(err, errObjectLimit) || i.overLimit.Load() {
		i.trip()
		return nil, err
	}
	if err != nil {
		i.checkReachable(err)
		return nil, err
	}
	// The list gave every metric its objects anew: withdrawn ones are
	// published again by its Finish. What its metrics hold of them is
	// what the watch costs its tenant from now on.
	i.unreachable.Store(false)
	if i.tenant != nil {
		i.charge(i.handler.Held(i.key))
	}
	first := !i.isSynced()
	i.setSynced(true)
	i.listedAt = time.Now()
	if first {
		ctrl.Log.WithName("informers").WithValues(i.key.LogValues()...).Info("Informer synced",
			"objects", n, "duration", time.Since(start).String())
	} else {
		// The watch expired or broke and resumed with a full list: objects
		// deleted meanwhile were removed by the list's Finish.
		relistsTotal.Inc()
		ctrl.Log.WithName("informers").WithValues(i.key.LogValues()...).Info("Informer relisted",
			"objects", n, "duration", time.Since(start).String())
	}
	// Metrics that registered while the list ran were not part of it.
	for _, s := range i.registry.Interested(i.key) {
		if !s.Synced() {
			i.requestFill()
			break
		}
	}
	if i.full {
		l := &unstructured.UnstructuredList{}
		l.SetResourceVersion(rv)
		return l, nil
	}
	return &metav1.PartialObjectMetadataList{ListMeta: metav1.ListMeta{ResourceVersion: rv}}, nil
}

func (lw listWatch) WatchWithContext(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	w, err := lw.i.watch(ctx, o)
	switch {
	case err != nil && lw.i.overLimit.Load():
		// Stopping: run fails the metrics with the reason.
	case err != nil:
		lw.i.checkReachable(err)
	case lw.i.unreachable.Swap(false):
		// The Reflector resumes its watch without a list after an outage;
		// the withdrawn metrics get their objects from a list of their own.
		lw.i.requestFill()
	}
	return w, err
}

// checkReachable withdraws the watch's metrics, once per outage, when err
// says the remote API server cannot be reached, refuses the credentials
// or may not be dialled (clusterfault.Classify, the reasons a poll of the
// cluster gets too). Errors about the resource itself (not served,
// forbidden, expired) are handled where the watch ends.
func (i *informer) checkReachable(err error) {
	if !i.clients.ReportUnreachable || ctxDone(i.ctx) || clusterfault.OfResource(err) {
		return
	}
	if i.unreachable.Swap(true) {
		return
	}
	ctrl.Log.WithName("informers").WithValues(i.key.LogValues()...).Info(
		"Remote cluster unreachable; its metrics are withdrawn until it answers")
	fault := clusterfault.Classify(err)
	i.handler.Fail(i.key, reason.New(reason.Of(fault, v1alpha1.ReasonClusterUnreachable),
		"cluster %s, watching %s: %s; the metric comes back by itself when the cluster answers and may be read",
		i.key.Cluster, i.key.GVR.GroupResource().String(), fault.Error()))
}

func ctxDone(ctx context.Context) bool { return ctx.Err() != nil }

// List is ListWithContext without a context of the caller.
func (lw listWatch) List(o metav1.ListOptions) (runtime.Object, error) {
	return lw.ListWithContext(lw.i.ctx, o)
}

// Watch is WatchWithContext without a context of the caller.
func (lw listWatch) Watch(o metav1.ListOptions) (watch.Interface, error) {
	return lw.WatchWithContext(lw.i.ctx, o)
}

// IsWatchListSemanticsUnSupported keeps the Reflector on list-then-watch:
// see listWatch.
func (listWatch) IsWatchListSemanticsUnSupported() bool { return true }

// run lists and watches until the informer is cancelled or fails for a
// reason retrying cannot fix.
func (i *informer) run(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	stop := context.AfterFunc(i.ctx, cancel)
	defer stop()
	log := ctrl.Log.WithName("informers").WithValues(append(i.key.LogValues(), "metadataOnly", !i.full)...)
	log.Info("Informer started")
	defer func() {
		i.mu.Lock()
		i.state.Lock()
		i.stopped = true
		i.state.Unlock()
		i.mu.Unlock()
		// Fills for joining metrics end with the informer's context.
		i.cancel()
		i.fills.Wait()
		i.charge(0)
		log.Info("Informer stopped")
	}()

	// A metadata-only watch delivers metaObjects (NewMetadataClient), or
	// PartialObjectMetadata from a client of metadata.NewForConfig, or for
	// an object metaDecoder leaves to the generated decoder: the Reflector
	// must not drop either as unexpected, and toMap reads both.
	var expected runtime.Object
	if i.full {
		expected = &unstructured.Unstructured{}
	}
	rewatch := rewatchBackoff
	r := cache.NewReflectorWithOptions(listWatch{i}, expected, &store{i}, cache.ReflectorOptions{
		Name:    "metrics-operator/" + i.key.String(),
		Backoff: &rewatch,
	})
	delays := newRelistDelays()
	for ctx.Err() == nil {
		started := time.Now()
		attempt, stopAttempt := context.WithCancel(ctx)
		i.state.Lock()
		i.stopAttempt = stopAttempt
		i.state.Unlock()
		err := r.ListAndWatchWithContext(attempt)
		stopAttempt()
		if ctx.Err() != nil {
			break
		}
		if limitErr := i.overLimitErr(); limitErr != nil {
			if tl := i.tooLarge.Load(); tl != nil {
				log.Info("Informer stopped: its cluster sent a response over the size limit", "limit", tl.Limit,
					"watchEvent", tl.Event, "retryAfter", i.retryAfterLimit.String())
			} else if i.tenantOver.Load() {
				log.Info("Informer stopped: its tenant's remote watches would hold more objects than allowed", "tenant", i.tenant.name,
					"limit", i.maxTenantObjects, "retryAfter", i.retryAfterLimit.String())
			} else {
				log.Info("Informer stopped: it holds more objects than allowed", "limit", i.maxObjects,
					"retryAfter", i.retryAfterLimit.String())
			}
			i.failOverLimit(limitErr)
			return
		}
		if err != nil && (apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsMethodNotSupported(err)) {
			log.Info("Informer failing: its resource cannot be watched", "reason", err.Error())
			i.fail(classify(i.key, err, i.clients.ReportUnreachable))
			return
		}
		delay := delays.next(i.ranHealthy(started), err)
		if err != nil {
			log.V(1).Info("Watch ended; relisting", "error", err.Error(), "backoff", delay)
		} else {
			log.V(1).Info("Watch expired or broke; relisting", "backoff", delay)
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
}

// ranHealthy reports whether the ListAndWatch begun at started listed
// successfully and then watched for at least healthyWatch.
func (i *informer) ranHealthy(started time.Time) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return !i.listedAt.Before(started) && time.Since(i.listedAt) >= healthyWatch
}

func (i *informer) fail(err error) {
	i.mu.Lock()
	i.state.Lock()
	i.stopped, i.failedAt, i.failErr, i.synced = true, time.Now(), err, false
	i.failWait = i.retryAfter
	i.state.Unlock()
	i.mu.Unlock()
	i.handler.Fail(i.key, err)
}

// classify turns a watch error into the condition a metric reports.
func classify(key registry.InformerKey, err error, remote bool) error {
	switch {
	case remote && apierrors.IsForbidden(err):
		return reason.ForbiddenRemoteTarget(key.GVR.GroupResource(), "list", "watch")
	case apierrors.IsNotFound(err):
		return reason.New(v1alpha1.ReasonTargetNotFound,
			"resource %s is not served (any more): its CRD may have been deleted; the metric recovers when it returns", key.GVR.String())
	case apierrors.IsForbidden(err):
		return reason.ForbiddenTarget(key.GVR.GroupResource(), "list", "watch")
	}
	return fmt.Errorf("watching %s: %w", key.String(), err)
}
