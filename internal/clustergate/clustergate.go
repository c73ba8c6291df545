package clustergate

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Defaults of Options.
const (
	// DefaultBase is the first back-off: a cluster that failed once is
	// tried again this soon.
	DefaultBase = 5 * time.Second
	// DefaultMax bounds the back-off of a cluster that keeps failing: the
	// longest a cluster that answers again waits to be read again.
	DefaultMax = 2 * time.Minute
	// DefaultMaxReads is how many reads one healthy cluster may have in
	// flight: half of the default four polling workers.
	DefaultMaxReads = 2
	// DefaultMaxTenantReads is how many workers may wait at once on the
	// clusters of one tenant, however many clusters it has: half of the
	// default four polling workers, so that the other half is always
	// there for the other tenants.
	DefaultMaxTenantReads = 2
)

// ErrBusy refuses a read because its cluster has as many reads in flight
// as it may; the caller tries again shortly.
var ErrBusy = errors.New("the cluster has as many reads in flight as it may have")

// ErrTenantBusy refuses a read because as many workers as a tenant may
// have wait on the tenant's clusters already. It is an ErrBusy: the
// caller tries again shortly, as for a busy cluster.
var ErrTenantBusy error = tenantBusy{}

type tenantBusy struct{}

func (tenantBusy) Error() string {
	return "as many workers as one namespace may have wait on the clusters of its accesses already"
}

func (tenantBusy) Is(target error) bool { return target == ErrBusy }

// BackoffError refuses a read because its cluster is in back-off.
type BackoffError struct {
	// Until is when the cluster is tried again; zero while a probe is
	// under way.
	Until time.Time
}

func (e *BackoffError) Error() string {
	if e.Until.IsZero() {
		return "the cluster is in back-off and being probed"
	}
	return "the cluster is in back-off until " + e.Until.UTC().Format(time.RFC3339)
}

// Options configures a Gate.
type Options struct {
	// Base and Max are the back-off after the first failure and its bound;
	// zero: DefaultBase, DefaultMax.
	Base, Max time.Duration
	// MaxReads is how many reads a healthy cluster may have in flight;
	// zero: DefaultMaxReads.
	MaxReads int
	// Tenant names the tenant a cluster's reads are charged to; "" for
	// none. With Tenant, at most MaxTenantReads workers wait at once on
	// the clusters of one tenant (zero: DefaultMaxTenantReads; negative:
	// no bound), so that a tenant with many clusters that hang cannot
	// hold every worker, however many of them it has. nil: no tenant is
	// charged.
	Tenant         func(key string) string
	MaxTenantReads int
	// Probe asks the cluster whether it answers, within a bound of its
	// own; nil error: it does. Required.
	Probe func(ctx context.Context, key string) error
	// Changed, if set, is called with a cluster's key when it went into
	// back-off or a probe found it back. It must not block.
	Changed func(key string)
}

// Gate admits reads per cluster. Safe for concurrent use.
type Gate struct {
	opts Options

	mu     sync.Mutex
	ctx    context.Context
	closed bool
	states map[string]*state
	// tenants counts the Workers holding a place of each tenant; a
	// tenant without one has no entry.
	tenants map[string]int
}

// state is one cluster's.
type state struct {
	reads int
	// failures counts the failed reads and probes in a row; a cluster
	// with failures admits one read at a time, the trial.
	failures int
	// until is the end of the back-off; zero when not in back-off.
	until time.Time
	// probing is set while a probe runs.
	probing bool
	timer   *time.Timer
}

// New returns a Gate.
func New(opts Options) *Gate {
	if opts.Base <= 0 {
		opts.Base = DefaultBase
	}
	if opts.Max <= 0 {
		opts.Max = DefaultMax
	}
	opts.Max = max(opts.Max, opts.Base)
	if opts.MaxReads <= 0 {
		opts.MaxReads = DefaultMaxReads
	}
	if opts.MaxTenantReads == 0 {
		opts.MaxTenantReads = DefaultMaxTenantReads
	}
	return &Gate{opts: opts, ctx: context.Background(), states: map[string]*state{}, tenants: map[string]int{}}
}

// Run makes probes use ctx and, once ctx is done, stops the pending probes
// and lets no new one start.
func (g *Gate) Run(ctx context.Context) {
	g.mu.Lock()
	g.ctx = ctx
	g.mu.Unlock()
	<-ctx.Done()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	for _, s := range g.states {
		if s.timer != nil {
			s.timer.Stop()
		}
	}
}

// Pass is one admitted read. Report its outcome, once it is known, and
// Release it once the read has really ended (its goroutine returned), so
// that a cluster never has more than its share of requests open.
type Pass struct {
	g        *Gate
	key      string
	s        *state
	once     sync.Once
	reported sync.Once
}

// Worker is one worker waiting on reads, one at a time or side by side.
// Its first admitted read takes a place of the cluster's tenant, which
// its further reads of that tenant's clusters share, until Done: so a
// poll of many clusters of one tenant costs that tenant one place, as it
// holds one worker. Safe for concurrent use.
type Worker struct {
	g *Gate
	// held are the tenants it holds a place of; done is set by Done.
	// Both are guarded by g.mu.
	held map[string]bool
	done bool
}

// Worker returns a Worker that holds no place yet.
func (g *Gate) Worker() *Worker { return &Worker{g: g} }

// Done gives back the places w holds, once the worker waits no more,
// whether its reads go on in the background or not (their clusters
// count them until they end). A Worker that is Done is admitted no read.
func (w *Worker) Done() {
	w.g.mu.Lock()
	defer w.g.mu.Unlock()
	w.done = true
	for t := range w.held {
		if w.g.tenants[t]--; w.g.tenants[t] <= 0 {
			delete(w.g.tenants, t)
		}
	}
	w.held = nil
}

// seatLocked charges a read of cluster key to w's place of the cluster's
// tenant, taking one if w holds none and the tenant has one left.
func (g *Gate) seatLocked(key string, w *Worker) error {
	if w == nil || g.opts.Tenant == nil || g.opts.MaxTenantReads < 0 {
		return nil
	}
	t := g.opts.Tenant(key)
	switch {
	case t == "" || w.held[t]:
		return nil
	case w.done || g.tenants[t] >= g.opts.MaxTenantReads:
		return ErrTenantBusy
	}
	g.tenants[t]++
	if w.held == nil {
		w.held = map[string]bool{}
	}
	w.held[t] = true
	return nil
}

// Enter admits a read of cluster key that worker w waits for, or refuses
// it with a *BackoffError, ErrBusy or ErrTenantBusy, in that order: a
// cluster in back-off says so whatever its tenant does. A nil w charges
// no tenant.
func (g *Gate) Enter(key string, w *Worker) (*Pass, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.states[key]
	if s == nil {
		s = &state{}
		g.states[key] = s
	}
	switch {
	case s.probing:
		return nil, &BackoffError{}
	case !s.until.IsZero():
		return nil, &BackoffError{Until: s.until}
	}
	limit := g.opts.MaxReads
	if s.failures > 0 {
		limit = 1
	}
	if s.reads >= limit {
		return nil, ErrBusy
	}
	if err := g.seatLocked(key, w); err != nil {
		return nil, err
	}
	s.reads++
	return &Pass{g: g, key: key, s: s}, nil
}

// Report records the read's outcome: answered is false when the cluster
// did not answer (unreachable, or the read's deadline passed). Only the
// first report counts; a read cut short by its caller's cancellation
// should not report.
func (p *Pass) Report(answered bool) {
	p.reported.Do(func() { p.g.record(p.key, p.s, answered) })
}

// Release gives the read's place back.
func (p *Pass) Release() {
	p.once.Do(func() {
		p.g.mu.Lock()
		defer p.g.mu.Unlock()
		p.s.reads--
	})
}

// record applies an outcome to s, unless s was reset meanwhile.
func (g *Gate) record(key string, s *state, answered bool) {
	g.mu.Lock()
	if g.states[key] != s || s.probing || !s.until.IsZero() {
		// Reset meanwhile, or in back-off already: the reads that were
		// in flight when it began tell nothing new.
		g.mu.Unlock()
		return
	}
	if answered {
		s.failures = 0
		g.mu.Unlock()
		return
	}
	g.backoffLocked(key, s)
	g.mu.Unlock()
	if g.opts.Changed != nil {
		g.opts.Changed(key)
	}
}

// Fail records that cluster key did not answer a request outside the
// Gate's reads (an access's own probe): it goes into back-off as after a
// failed read.
func (g *Gate) Fail(key string) {
	g.mu.Lock()
	s := g.states[key]
	if s == nil {
		s = &state{}
		g.states[key] = s
	}
	g.mu.Unlock()
	g.record(key, s, false)
}

// backoffLocked counts a failure of s and starts its back-off, at whose
// end the cluster is probed.
func (g *Gate) backoffLocked(key string, s *state) {
	s.failures++
	d := g.opts.Base
	for i := 1; i < s.failures && d < g.opts.Max; i++ {
		d *= 2
	}
	d = min(d, g.opts.Max)
	s.until = time.Now().Add(d)
	if s.timer != nil {
		s.timer.Stop()
	}
	if g.closed {
		return
	}
	s.timer = time.AfterFunc(d, func() { g.probe(key, s) })
}

// probe asks the cluster whether it answers again, at the end of its
// back-off.
func (g *Gate) probe(key string, s *state) {
	g.mu.Lock()
	if g.states[key] != s || g.closed || s.probing {
		g.mu.Unlock()
		return
	}
	s.probing, s.until = true, time.Time{}
	ctx := g.ctx
	g.mu.Unlock()
	err := g.opts.Probe(ctx, key)
	g.mu.Lock()
	if g.states[key] != s {
		g.mu.Unlock()
		return
	}
	s.probing = false
	if ctx.Err() != nil {
		g.mu.Unlock()
		return
	}
	if err != nil {
		g.backoffLocked(key, s)
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	if g.opts.Changed != nil {
		g.opts.Changed(key)
	}
}

// Reset forgets what the Gate knows of cluster key: a new definition of
// it is tried at once. Reads in flight are not counted any more.
func (g *Gate) Reset(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.states[key]; s != nil {
		if s.timer != nil {
			s.timer.Stop()
		}
		delete(g.states, key)
	}
}

// Blocked returns the *BackoffError of cluster key while it is in
// back-off, else nil.
func (g *Gate) Blocked(key string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch s := g.states[key]; {
	case s == nil:
		return nil
	case s.probing:
		return &BackoffError{}
	case !s.until.IsZero():
		return &BackoffError{Until: s.until}
	}
	return nil
}
