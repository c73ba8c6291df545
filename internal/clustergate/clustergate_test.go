package clustergate

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// probes is a Probe whose answers the test sets, and which records the
// Changed calls.
type probes struct {
	mu      sync.Mutex
	fail    bool
	calls   int
	changed []string
}

func (p *probes) probe(context.Context, string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.fail {
		return errors.New("no answer")
	}
	return nil
}

func (p *probes) set(fail bool) { p.mu.Lock(); p.fail = fail; p.mu.Unlock() }

func (p *probes) record(key string) { p.mu.Lock(); p.changed = append(p.changed, key); p.mu.Unlock() }

func (p *probes) counts() (calls, changed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls, len(p.changed)
}

func newGate(t *testing.T, p *probes, opts Options) *Gate {
	t.Helper()
	opts.Probe, opts.Changed = p.probe, p.record
	g := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return g
}

// backoffUntil returns the end of the back-off err reports.
func backoffUntil(t *testing.T, err error) time.Time {
	t.Helper()
	var b *BackoffError
	if !errors.As(err, &b) {
		t.Fatalf("got %v, want a back-off", err)
	}
	return b.Until
}

func TestReadsInFlightAreBounded(t *testing.T) {
	g := New(Options{MaxReads: 2, Probe: func(context.Context, string) error { return nil }})
	a, err := g.Enter("c", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Enter("c", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Enter("c", nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("third read: %v, want ErrBusy", err)
	}
	if _, err := g.Enter("other", nil); err != nil {
		t.Fatalf("another cluster's read: %v, want admitted", err)
	}
	a.Report(true)
	a.Release()
	a.Release() // twice gives back one place only
	if _, err := g.Enter("c", nil); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	if _, err := g.Enter("c", nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("after one release and one more read: %v, want ErrBusy", err)
	}
}

// TestTenantReadsAreBounded: the workers waiting on the clusters of one
// tenant are bounded, however many clusters it has; one more is refused
// with ErrTenantBusy, an ErrBusy, while another tenant's cluster is read.
// A worker's reads of several of its tenant's clusters share one place,
// which Done gives back; a cluster in back-off says so first.
func TestTenantReadsAreBounded(t *testing.T) {
	tenant := func(key string) string { return key[:1] }
	g := New(Options{MaxTenantReads: 2, Tenant: tenant, Probe: func(context.Context, string) error { return nil }})
	w1, w2 := g.Worker(), g.Worker()
	if _, err := g.Enter("a1", w1); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Enter("a2", w2); err != nil {
		t.Fatal(err)
	}
	w3 := g.Worker()
	_, err := g.Enter("a3", w3)
	if !errors.Is(err, ErrTenantBusy) || !errors.Is(err, ErrBusy) {
		t.Fatalf("a third worker on tenant a: %v, want ErrTenantBusy, an ErrBusy", err)
	}
	if _, err := g.Enter("b1", w3); err != nil {
		t.Fatalf("tenant b's cluster: %v, want admitted", err)
	}
	// One worker reading its tenant's clusters side by side: one place.
	for _, key := range []string{"a3", "a4", "a5"} {
		if _, err := g.Enter(key, w1); err != nil {
			t.Errorf("worker 1 reading %s beside a1: %v, want admitted", key, err)
		}
	}
	// A place is given back with its worker, even while its reads go on.
	w1.Done()
	w1.Done() // twice gives back one place only
	if _, err := g.Enter("a6", w3); err != nil {
		t.Fatalf("after a worker was done: %v, want admitted", err)
	}
	if _, err := g.Enter("a7", g.Worker()); !errors.Is(err, ErrTenantBusy) {
		t.Fatalf("after one worker done and one more admitted: %v, want ErrTenantBusy", err)
	}
	if _, err := g.Enter("a1", w1); !errors.Is(err, ErrTenantBusy) {
		t.Errorf("a worker that is done: %v, want refused", err)
	}
	g.Fail("a8")
	var b *BackoffError
	if _, err := g.Enter("a8", g.Worker()); !errors.As(err, &b) {
		t.Errorf("a cluster in back-off of a busy tenant: %v, want its back-off", err)
	}
	if _, err := g.Enter("a9", nil); err != nil {
		t.Errorf("a read charged to no worker: %v, want admitted", err)
	}
}

// TestBackoffAndProbe: a read that found the cluster unreachable puts it
// into back-off for Base, doubling with each failed probe up to Max;
// reads fail at once meanwhile; the probe at the end of a back-off finds
// it back, after which one trial read at a time is let through until one
// succeeds.
func TestBackoffAndProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &probes{fail: true}
		g := newGate(t, p, Options{Base: time.Second, Max: 4 * time.Second, MaxReads: 2})
		start := time.Now()
		pass, err := g.Enter("c", nil)
		if err != nil {
			t.Fatal(err)
		}
		other, _ := g.Enter("c", nil)
		pass.Report(false)
		pass.Release()
		if until := backoffUntil(t, mustRefuse(t, g)); !until.Equal(start.Add(time.Second)) {
			t.Errorf("back-off until %v after the start, want 1s", until.Sub(start))
		}
		// A read in flight when the back-off began changes nothing.
		other.Report(false)
		other.Release()
		if until := backoffUntil(t, mustRefuse(t, g)); !until.Equal(start.Add(time.Second)) {
			t.Errorf("a late failure moved the back-off to %v", until.Sub(start))
		}
		if _, changed := p.counts(); changed != 1 {
			t.Errorf("Changed called %d times, want once on entering back-off", changed)
		}

		// Probes at 1s, 3s (+2s), 7s (+4s), 11s (+4s, the max).
		for i, at := range []time.Duration{time.Second, 3 * time.Second, 7 * time.Second, 11 * time.Second} {
			time.Sleep(time.Until(start.Add(at)) - time.Millisecond)
			synctest.Wait()
			if calls, _ := p.counts(); calls != i {
				t.Fatalf("%d probes before %v, want %d", calls, at, i)
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
			if calls, _ := p.counts(); calls != i+1 {
				t.Fatalf("%d probes at %v, want %d", calls, at, i+1)
			}
		}
		p.set(false)
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if _, changed := p.counts(); changed != 2 {
			t.Errorf("Changed called %d times, want a second time when the probe found it back", changed)
		}
		trial, err := g.Enter("c", nil)
		if err != nil {
			t.Fatalf("after the probe found it back: %v", err)
		}
		if _, err := g.Enter("c", nil); !errors.Is(err, ErrBusy) {
			t.Errorf("a second read during the trial: %v, want ErrBusy", err)
		}
		trial.Report(true)
		trial.Release()
		a, err1 := g.Enter("c", nil)
		_, err2 := g.Enter("c", nil)
		if err1 != nil || err2 != nil {
			t.Fatalf("after a successful trial: %v, %v; want two reads admitted", err1, err2)
		}
		a.Report(false)
		if until := backoffUntil(t, mustRefuse(t, g)); time.Until(until) != time.Second {
			t.Errorf("a new failure after a success backs off %v, want the base again", time.Until(until))
		}
	})
}

func mustRefuse(t *testing.T, g *Gate) error {
	t.Helper()
	if _, err := g.Enter("c", nil); err != nil {
		return err
	}
	t.Fatal("a read was admitted during back-off")
	return nil
}

// TestTrialFailureBacksOffLonger: a cluster that answers its probe but
// not the reads (a server that answers discovery and hangs lists) backs
// off longer each time.
func TestTrialFailureBacksOffLonger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &probes{}
		g := newGate(t, p, Options{Base: time.Second, Max: time.Minute})
		for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
			pass, err := g.Enter("c", nil)
			if err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			pass.Report(false)
			pass.Release()
			until := backoffUntil(t, mustRefuse(t, g))
			if got := time.Until(until); got != want {
				t.Errorf("round %d: back-off %v, want %v", i, got, want)
			}
			time.Sleep(want)
			synctest.Wait()
		}
	})
}

// TestFailAndReset: an access's failed probe puts the cluster into
// back-off and Blocked says so; a new definition (Reset) is tried at once
// and the old back-off's probe never runs.
func TestFailAndReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &probes{fail: true}
		g := newGate(t, p, Options{Base: time.Second})
		if err := g.Blocked("c"); err != nil {
			t.Fatalf("a new cluster is blocked: %v", err)
		}
		g.Fail("c")
		if err := g.Blocked("c"); err == nil {
			t.Fatal("not blocked after a failed probe")
		}
		g.Reset("c")
		if err := g.Blocked("c"); err != nil {
			t.Fatalf("blocked after a reset: %v", err)
		}
		if _, err := g.Enter("c", nil); err != nil {
			t.Fatalf("read after a reset: %v", err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if calls, _ := p.counts(); calls != 0 {
			t.Errorf("%d probes of a reset cluster, want 0", calls)
		}
	})
}

// TestStopsWithItsContext: no probe starts once Run's context is done.
func TestStopsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &probes{fail: true}
		g := New(Options{Base: time.Second, Probe: p.probe})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { g.Run(ctx); close(done) }()
		synctest.Wait()
		g.Fail("c")
		cancel()
		<-done
		time.Sleep(time.Minute)
		synctest.Wait()
		if calls, _ := p.counts(); calls != 0 {
			t.Errorf("%d probes after the gate stopped, want 0", calls)
		}
	})
}
