package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/export/otlp"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
)

// Exporter pushes metrics to a resolved DataSink; *otlp.Pool is one.
type Exporter interface {
	Export(ctx context.Context, key string, target *datasink.Target, metrics []otlp.Metric) error
}

// Options configures a Coordinator.
type Options struct {
	// MinExportInterval is the shortest time between two pushes to one
	// DataSink; every metric due rides along.
	MinExportInterval time.Duration
	// StatusInterval is the shortest time between two status writes of one
	// metric that change only its observation; condition transitions are
	// written at once.
	StatusInterval time.Duration
	// Sinks holds the resolved DataSinks.
	Sinks *datasink.Store
	// Exporter pushes over OTLP.
	Exporter Exporter
	// Prometheus is the collector behind /metrics. The coordinator gives it
	// the family of each name's owner only (the oldest claimant, see
	// claim).
	Prometheus *promexport.Collector
	// StatusWriters write status, by Key.Kind.
	StatusWriters map[string]StatusWriter
	// ExportTimeout bounds one push request (default
	// DefaultExportTimeout). Each DataSink pushes from its own goroutine,
	// so a sink that never answers delays no other namespace's sinks, and
	// its own namespace's only while all its MaxPushesPerNamespace turns
	// are taken.
	ExportTimeout time.Duration
	// ExportBackoff spaces the attempts of a failing DataSink (default
	// DefaultExportBackoffBase up to DefaultExportBackoffCap), never less
	// than MinExportInterval apart, whatever changes arrive meanwhile.
	ExportBackoff Backoff
	// StatusWritesPerSecond is the budget of status writes of all metrics
	// together (default DefaultStatusWritesPerSecond): a token bucket of
	// twice as many, so at most StatusWritesPerSecond × T + 2 ×
	// StatusWritesPerSecond writes in any T seconds. However many metrics
	// change, the API server sees no more, and status lags behind rather
	// than /metrics.
	StatusWritesPerSecond float64
	// MaxPushesPerNamespace is how many DataSinks of one namespace push at
	// once (default DefaultMaxPushesPerNamespace). Every push holds a
	// goroutine and a connection for up to ExportTimeout, so a tenant with
	// thousands of sinks that never answer would otherwise hold thousands.
	// Negative: no bound.
	MaxPushesPerNamespace int
}

// DefaultMaxPushesPerNamespace bounds the pushes of one namespace when
// Options leave it unset: a tenant rarely has more sinks than that, and
// the sinks over it only wait their turn, a fraction of a second.
const DefaultMaxPushesPerNamespace = 4

// DefaultStatusWritesPerSecond is the status write budget when Options
// leave it unset: 1,000 metrics at the default 30 s status interval need
// about 33 per second, so beyond a few hundred busy metrics observations
// refresh less often than the interval, never more.
const DefaultStatusWritesPerSecond = 20

// Coordinator is the MetricUpdateCoordinator; see the package doc.
type Coordinator struct {
	opts Options

	// mu guards the metrics' state and the claims on names. The
	// collector's Set and Delete are called under it, so that /metrics
	// follows the state in order; they only store a family, never render.
	mu      sync.Mutex
	metrics map[Key]*state
	sinks   map[types.NamespacedName]*sinkState
	// claims are the claimants of each family name, owner first.
	claims map[string][]*claim

	// exports holds DataSinks with something to push: all metrics due at
	// a sink go out in one request, so a thousand metrics on one sink cost
	// one push per interval, not a thousand. The queue runs each sink's
	// push on its own goroutine and never two of one sink at once.
	exports workqueue.TypedDelayingInterface[types.NamespacedName]
	pushes  sync.WaitGroup
	// inFlight counts the running pushes per namespace, within
	// MaxPushesPerNamespace (guarded by mu).
	inFlight map[string]int
	status   workqueue.TypedRateLimitingInterface[Key]
	// writes spends the status write budget.
	writes *rate.Limiter
	// sinkWalks counts dueAt's walks over a sink's metrics, the cost the
	// unresolved flag keeps off the event path (read by tests).
	sinkWalks atomic.Int64
}

// sinkState is what the coordinator knows of one DataSink.
type sinkState struct {
	lastExport time.Time
	members    map[Key]struct{}
	// pending is set while a push of the sink is queued, so the event path
	// queues it once per push, not once per event.
	pending bool
	// failures counts consecutive failed pushes; no push starts before
	// retryAt, however many changes arrive meanwhile.
	failures int
	retryAt  time.Time
	// resend makes the next push carry every metric of the sink: its
	// configuration changed or it was deleted, and each metric's status
	// must say how that went.
	resend bool
	// unresolved is set when the last push found nothing to push to (the
	// default sink is absent, or the sink does not resolve) and its
	// metrics have recorded why: a change of their series cannot change
	// that, so it queues no push until SinkChanged or a metric joining
	// or changing its description asks again. Without it every event
	// would walk all the sink's metrics to find nowhere to send them.
	unresolved bool
	// changes counts SinkChanged calls, so a push that resolved the sink
	// before one does not mark it unresolved after it.
	changes uint64
}

var (
	_ manager.Runnable               = (*Coordinator)(nil)
	_ manager.LeaderElectionRunnable = (*Coordinator)(nil)
)

type state struct {
	update *Update // nil until the first Publish
	// observed is when the series last changed or were confirmed, in
	// Unix nanoseconds; atomic, so that Tracker.Changed's fast path can
	// move it without mu.
	observed   atomic.Int64
	dirtySince time.Time // the first change not pushed yet
	// evalErr is why the metric cannot be evaluated; while it is set the
	// metric is withdrawn: no samples on /metrics, no OTLP push.
	evalErr error
	errGen  int64
	// withdrawn mirrors evalErr != nil for the /metrics collector, which
	// reads it without taking mu.
	withdrawn atomic.Bool
	// version counts changes of what /metrics shows for the metric: the
	// collector renders the family again when it moves.
	version atomic.Uint64
	// claim is the metric's claim on its family name; nil before the
	// first Publish.
	claim      *claim
	sinkErr    error
	exportErr  error
	lastExport time.Time // of this metric
	// seq counts publishes that changed the series; exportedSeq is the
	// seq last pushed. A publish that changes nothing waits for the
	// heartbeat, so polling pushes once per interval, not twice.
	seq         uint64
	exportedSeq uint64
	lastStatus  time.Time
	written     *Status
	// statusPending is set while a status check is queued for a change of
	// series; the check renders the series, so it runs once per
	// StatusInterval however many events arrive.
	statusPending bool
	// overwrites counts StatusOverwritten calls, and overwritesWritten
	// is the count the last write followed: while they differ, the stored
	// status is not the one last written, so the next check writes it even
	// if the status computed is the same.
	overwrites, overwritesWritten uint64
	// sink is the state of the sink the metric pushes to (update.Sink),
	// nil before the first Publish: the event path reaches it without a
	// lookup by name.
	sink *sinkState
	// removed is set when Remove dropped the state: a Tracker holding it
	// looks the metric up again.
	removed bool
	// quiet is set, under mu, while a change needs nothing more than a new
	// version and observation time: its status check and its push (or
	// nowhere to push) are queued already. Tracker.Changed then takes no
	// lock. Whatever reads the metric's changes (statusDue, dueAt) or
	// drops the state clears it, so the next change is recorded in full.
	quiet atomic.Bool
}

// New returns a Coordinator; add it to the manager to start its workers.
// It defaults the durations and rates left zero and refuses options it
// cannot work with (a missing collaborator, a negative duration), so no
// caller's mistake turns into a panic or a busy loop later.
func New(opts Options) (*Coordinator, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("coordinator options: %w", err)
	}
	opts.defaults()
	c := &Coordinator{
		opts:     opts,
		metrics:  map[Key]*state{},
		sinks:    map[types.NamespacedName]*sinkState{},
		claims:   map[string][]*claim{},
		inFlight: map[string]int{},
		exports: workqueue.NewTypedDelayingQueueWithConfig(
			workqueue.TypedDelayingQueueConfig[types.NamespacedName]{Name: "coordinator_exports"}),
		status: newStatusQueue(),
		writes: rate.NewLimiter(rate.Limit(opts.StatusWritesPerSecond), max(1, int(2*opts.StatusWritesPerSecond))),
	}
	return c, nil
}

func (o *Options) validate() error {
	var errs []error
	if o.Sinks == nil {
		errs = append(errs, errors.New("the Sinks option is nil"))
	}
	if o.Exporter == nil {
		errs = append(errs, errors.New("the Exporter option is nil"))
	}
	if o.Prometheus == nil {
		errs = append(errs, errors.New("the Prometheus option is nil"))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"MinExportInterval", o.MinExportInterval}, {"StatusInterval", o.StatusInterval},
		{"ExportTimeout", o.ExportTimeout}, {"ExportBackoff.Base", o.ExportBackoff.Base}, {"ExportBackoff.Cap", o.ExportBackoff.Cap},
	} {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("%s is negative (%s)", d.name, d.d))
		}
	}
	if o.StatusWritesPerSecond < 0 {
		errs = append(errs, fmt.Errorf("StatusWritesPerSecond is negative (%g)", o.StatusWritesPerSecond))
	}
	for kind, w := range o.StatusWriters {
		if w == nil {
			errs = append(errs, fmt.Errorf("StatusWriters[%q] is nil", kind))
		}
	}
	return errors.Join(errs...)
}

// defaults fills the durations and rates left zero.
func (o *Options) defaults() {
	if o.ExportTimeout == 0 {
		o.ExportTimeout = DefaultExportTimeout
	}
	if o.ExportBackoff.Base == 0 {
		o.ExportBackoff.Base = DefaultExportBackoffBase
	}
	if o.ExportBackoff.Cap < o.ExportBackoff.Base {
		o.ExportBackoff.Cap = max(DefaultExportBackoffCap, o.ExportBackoff.Base)
	}
	if o.StatusInterval == 0 {
		o.StatusInterval = 10 * time.Second
	}
	if o.StatusWritesPerSecond == 0 {
		o.StatusWritesPerSecond = DefaultStatusWritesPerSecond
	}
	if o.MaxPushesPerNamespace == 0 {
		o.MaxPushesPerNamespace = DefaultMaxPushesPerNamespace
	}
}

// Publish records a metric's description and the Source of its series:
// /metrics serves them at once, and when dataChanged (or the description
// changed, or the metric comes back from an error) an OTLP push follows
// within MinExportInterval. Polling calls it after every read; the
// event-driven path once per registration, then Changed for every change.
// Publish clears an error recorded by SetError. An update for an older
// generation of the same object than the last update or error is
// ignored: its producer was overtaken.
func (c *Coordinator) Publish(u Update, dataChanged bool) {
	publishesTotal.Inc()
	c.mu.Lock()
	st := c.stateFor(u.Key)
	if st.update != nil && st.update.Created.Equal(u.Created) &&
		(u.Generation < st.update.Generation || st.evalErr != nil && u.Generation < st.errGen) {
		// The same object has moved on; a recreated one starts afresh.
		c.mu.Unlock()
		return
	}
	if st.update != nil && !st.update.Created.Equal(u.Created) {
		// Another object of the same name: its status is written anew,
		// at once, not compared with the one its predecessor got.
		countNotReady(u.Key.Kind, st.written, nil)
		st.written, st.lastStatus = nil, time.Time{}
	}
	if st.update == nil || st.update.Mode != u.Mode {
		c.countModes(st.update, &u)
	}
	described := st.update == nil || st.evalErr != nil || !sameMetadata(st.update, &u) || st.update.Source != u.Source
	changed := dataChanged || described
	if st.update != nil && st.update.Sink.NamespacedName != u.Sink.NamespacedName {
		c.leaveSinkLocked(u.Key, st.update.Sink.NamespacedName)
	}
	s := c.joinSinkLocked(u.Key, u.Sink.NamespacedName)
	st.sink = s
	if described {
		s.unresolved = false // the metric's own push records where it stands
	}
	st.update = &u
	st.evalErr = nil
	st.withdrawn.Store(false)
	st.version.Add(1)
	st.observed.Store(time.Now().UnixNano())
	others := c.claimLocked(u.Key, st)
	var q queued
	if changed {
		q = c.changedLocked(st)
	}
	c.mu.Unlock()

	c.ownersChanged(others)
	if changed {
		c.enqueue(u.Key, q)
	} else {
		c.status.Add(u.Key)
	}
}

// Changed tells the coordinator that a published metric's series changed.
// The event path calls it for every event that changed something, so it
// costs a map lookup and at most one queue operation per push and per
// status interval, never a rendering of the series.
func (c *Coordinator) Changed(key Key) {
	c.mu.Lock()
	q := c.changedLocked(c.metrics[key])
	c.mu.Unlock()
	c.enqueue(key, q)
}

// Tracker tells the coordinator of one metric's changes; see
// Coordinator.Tracker.
type Tracker struct {
	c   *Coordinator
	key Key
	st  *state // guarded by c.mu; nil or removed: look it up again
	// quiet is st as last seen quiet, for the fast path (read without mu).
	quiet atomic.Pointer[state]
}

// Tracker returns a handle on the metric key for its event-driven
// producer, whose every event that changes the metric's series reports
// it: Tracker.Changed is Changed without looking the metric up by key,
// which at a thousand metrics changed per event is most of its cost.
// The handle follows the metric through Remove and a new Publish.
func (c *Coordinator) Tracker(key Key) *Tracker { return &Tracker{c: c, key: key} }

// Changed is Coordinator.Changed for the tracker's metric. While the
// metric is quiet (its push and status check are queued already) it only
// moves the version /metrics renders by and the observation time: the
// event path tells every metric of a changed state, a thousand of them
// many times a second, and taking mu for each cost more than the events.
func (t *Tracker) Changed() {
	if st := t.quiet.Load(); st != nil && st.quiet.Load() {
		st.version.Add(1)
		st.observed.Store(time.Now().UnixNano())
		return
	}
	c := t.c
	c.mu.Lock()
	st := t.st
	if st == nil || st.removed {
		st = c.metrics[t.key]
		t.st = st
	}
	q := c.changedLocked(st)
	if st != nil && st.quiet.Load() {
		t.quiet.Store(st)
	}
	c.mu.Unlock()
	c.enqueue(t.key, q)
}

// queued is what a change asks of the export and status queues.
type queued struct {
	sink                     types.NamespacedName
	export, status           bool
	exportDelay, statusDelay time.Duration
}

// changedLocked records a change of the metric's series; the caller
// passes the result to enqueue after unlocking. Publish records its
// change in the same critical section as the update, so that no push
// can take the metric between the two and push it twice.
func (c *Coordinator) changedLocked(st *state) queued {
	if st == nil || st.update == nil {
		return queued{}
	}
	st.version.Add(1)
	now := time.Now()
	st.seq++
	st.observed.Store(now.UnixNano())
	if st.dirtySince.IsZero() {
		st.dirtySince = now
	}
	q := queued{sink: st.update.Sink.NamespacedName}
	s := st.sink
	q.export = !s.pending && !s.unresolved
	s.pending = s.pending || q.export
	q.exportDelay = max(c.opts.MinExportInterval-now.Sub(s.lastExport), s.retryAt.Sub(now))
	q.status = !st.statusPending
	st.statusPending = true
	q.statusDelay = c.opts.StatusInterval - now.Sub(st.lastStatus)
	st.quiet.Store(s.pending || s.unresolved)
	return q
}

func (c *Coordinator) enqueue(key Key, q queued) {
	if q.export {
		c.exports.AddAfter(q.sink, max(q.exportDelay, 0))
	}
	if q.status {
		c.status.AddAfter(key, max(q.statusDelay, 0))
	}
}

// SetError records why a metric cannot be evaluated and withdraws it:
// its family leaves /metrics (the metric keeps its claim on the name, so
// a younger duplicate does not take over while it is broken) and nothing
// is pushed for it, neither changes nor heartbeats, so no backend stores
// old values under fresh timestamps. The status reports err (its reason,
// else TargetNotFound) for generation. The next Publish brings the
// metric back with the values current then; Changed does not.
func (c *Coordinator) SetError(key Key, generation int64, err error) {
	c.mu.Lock()
	st := c.stateFor(key)
	st.evalErr, st.errGen = err, generation
	st.withdrawn.Store(true)
	st.version.Add(1)
	c.mu.Unlock()
	c.status.Add(key)
}

// Remove forgets a metric whose object is gone: its family leaves
// /metrics and nothing more is pushed for it.
func (c *Coordinator) Remove(key Key) {
	var others []Key
	c.mu.Lock()
	if st, ok := c.metrics[key]; ok {
		others = c.unclaimLocked(st)
		c.countModes(st.update, nil)
		countNotReady(key.Kind, st.written, nil)
		if st.update != nil {
			c.leaveSinkLocked(key, st.update.Sink.NamespacedName)
		}
		delete(c.metrics, key)
		st.removed = true
		st.quiet.Store(false)
	}
	c.mu.Unlock()
	c.ownersChanged(others)
	c.forgetStatus(key)
}

// forgetStatus tells the key's status writer, if it keeps anything per
// metric, that the metric is gone.
func (c *Coordinator) forgetStatus(key Key) {
	if f, ok := c.opts.StatusWriters[key.Kind].(StatusForgetter); ok {
		f.ForgetStatus(key)
	}
}

// StatusOverwritten tells the coordinator that the status stored on a
// metric's object is not the one last written. Either another writer
// changed it (an older replica during a handover, `kubectl edit`): it is
// written again even if the metric did not change, no sooner than
// StatusInterval after the last write, so that two writers that disagree
// do not take turns at the budget's rate. Or the object was replaced by
// one of the same name (replaced): its status is written at once, as a
// new metric's.
func (c *Coordinator) StatusOverwritten(key Key, replaced bool) {
	c.mu.Lock()
	st, ok := c.metrics[key]
	if ok {
		st.overwrites++
		if replaced {
			countNotReady(key.Kind, st.written, nil)
			st.written, st.lastStatus = nil, time.Time{}
		}
	}
	c.mu.Unlock()
	if ok {
		c.status.Add(key)
	}
}

// SinkChanged tells the coordinator that a DataSink was created, changed
// or deleted: the metrics pushing to it retry at once.
func (c *Coordinator) SinkChanged(sink types.NamespacedName) {
	c.mu.Lock()
	var keys []Key
	if s := c.sinks[sink]; s != nil {
		for k := range s.members {
			keys = append(keys, k)
		}
		// A new configuration deserves a try of its own, with every metric.
		s.failures, s.retryAt, s.resend, s.unresolved = 0, time.Time{}, true, false
		s.changes++
	}
	c.mu.Unlock()
	c.exports.Add(sink)
	for _, k := range keys {
		c.status.Add(k)
	}
}

func (c *Coordinator) joinSinkLocked(key Key, sink types.NamespacedName) *sinkState {
	s := c.sinks[sink]
	if s == nil {
		s = &sinkState{members: map[Key]struct{}{}}
		c.sinks[sink] = s
	}
	s.members[key] = struct{}{}
	return s
}

func (c *Coordinator) leaveSinkLocked(key Key, sink types.NamespacedName) {
	if s := c.sinks[sink]; s != nil {
		delete(s.members, key)
		if len(s.members) == 0 {
			delete(c.sinks, sink)
			exportFailures.DeleteLabelValues(sink.String())
		}
	}
}

func (c *Coordinator) stateFor(k Key) *state {
	st, ok := c.metrics[k]
	if !ok {
		st = &state{}
		c.metrics[k] = st
	}
	return st
}

func (c *Coordinator) countModes(old, cur *Update) {
	if old != nil {
		trackedMetrics.WithLabelValues(string(old.Mode)).Dec()
	}
	if cur != nil {
		trackedMetrics.WithLabelValues(string(cur.Mode)).Inc()
	}
}

// NeedLeaderElection is true: only the leader pushes and writes status.
func (c *Coordinator) NeedLeaderElection() bool { return true }

// Start runs the export and status workers until ctx is done.
func (c *Coordinator) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("coordinator")
	ctx = ctrl.LoggerInto(ctx, log)
	log.Info("Starting coordinator", "minExportInterval", c.opts.MinExportInterval, "exportTimeout", c.opts.ExportTimeout,
		"exportBackoffBase", c.opts.ExportBackoff.Base, "exportBackoffCap", c.opts.ExportBackoff.Cap)
	var wg sync.WaitGroup
	wg.Go(func() {
		for c.dispatchExport(ctx) {
		}
	})
	wg.Go(func() {
		for c.processStatus(ctx) {
		}
	})
	<-ctx.Done()
	c.exports.ShutDown()
	c.status.ShutDown()
	wg.Wait()
	c.pushes.Wait()
	if closer, ok := c.opts.Exporter.(interface{ Shutdown(context.Context) error }); ok {
		// The manager's context is done; give open connections a moment.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := closer.Shutdown(sctx); err != nil {
			log.Error(err, "Shutting down exporters failed")
		}
	}
	log.Info("Stopped coordinator")
	return nil
}
