package startup

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func ids(kind string, names ...string) []ID {
	out := make([]ID, len(names))
	for i, n := range names {
		out[i] = ID{Kind: kind, NamespacedName: types.NamespacedName{Namespace: "ns", Name: n}}
	}
	return out
}

func name(n string) types.NamespacedName { return types.NamespacedName{Namespace: "ns", Name: n} }

// run starts g in the bubble and returns a function that stops it.
func run(t *testing.T, g *Gate) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- g.Start(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	}
}

func isOpen(g *Gate) bool {
	select {
	case <-g.Open():
		return true
	default:
		return false
	}
}

func newGate(t *testing.T, existing []ID, err error) *Gate {
	t.Helper()
	g, nerr := New(Options{Existing: func(context.Context) ([]ID, error) { return existing, err }})
	if nerr != nil {
		t.Fatal(nerr)
	}
	return g
}

func TestGateOpensWhenEveryMetricPresentSettled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		existing := append(ids("Metric", "a", "b"), ids("ManagedMetric", "a")...)
		g := newGate(t, existing, nil)
		// Settled before the gate listed: still counts.
		g.Settled("Metric", name("a"))
		defer run(t, g)()
		synctest.Wait()
		if isOpen(g) {
			t.Fatal("open with two metrics unsettled")
		}
		g.Settled("Metric", name("b"))
		g.Settled("Metric", name("not-present")) // created after start: not waited for
		time.Sleep(time.Second)
		synctest.Wait()
		if isOpen(g) {
			t.Fatal("open with the ManagedMetric of the same name unsettled")
		}
		before := time.Now()
		g.Settled("ManagedMetric", name("a"))
		<-g.Open()
		if d := time.Since(before); d != 0 {
			t.Errorf("opened %s after the last metric settled, want at once", d)
		}
		g.Settled("Metric", name("late")) // after opening: ignored
	})
}

func TestGateOpensWhenMetricsStopSettling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate(t, ids("Metric", "a", "b", "stuck"), nil)
		defer run(t, g)()
		start := time.Now()
		time.Sleep(DefaultQuiet - time.Millisecond)
		g.Settled("Metric", name("a"))
		time.Sleep(DefaultQuiet - time.Millisecond)
		g.Settled("Metric", name("b"))
		synctest.Wait()
		if isOpen(g) {
			t.Fatal("open while metrics still settle")
		}
		<-g.Open()
		if d, want := time.Since(start), 3*DefaultQuiet-2*time.Millisecond; d != want {
			t.Errorf("opened after %s, want %s (quiet since the last metric settled)", d, want)
		}
	})
}

func TestGateOpensAtTheLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var existing []ID
		for i := range 100 {
			existing = append(existing, ids("Metric", string(rune('a'+i%26))+string(rune('a'+i/26)))...)
		}
		g := newGate(t, append(existing, ids("Metric", "stuck")...), nil)
		defer run(t, g)()
		start := time.Now()
		opened := make(chan time.Time, 1)
		go func() {
			<-g.Open()
			opened <- time.Now()
		}()
		for _, id := range existing {
			if isOpen(g) {
				break
			}
			time.Sleep(time.Second)
			g.Settled(id.Kind, id.NamespacedName)
		}
		if d := (<-opened).Sub(start); d != DefaultLimit {
			t.Errorf("opened after %s, want the limit %s", d, DefaultLimit)
		}
	})
}

func TestGateOpensAtOnceWithoutMetricsOrWhenListingFails(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing []ID
		err      error
	}{
		{name: "no metrics"},
		{name: "list failed", existing: ids("Metric", "a"), err: errors.New("no cache")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newGate(t, tc.existing, tc.err)
				start := time.Now()
				defer run(t, g)()
				<-g.Open()
				if d := time.Since(start); d != 0 {
					t.Errorf("opened after %s, want at once", d)
				}
			})
		})
	}
}

func TestGateStoppedBeforeOpeningStaysClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate(t, ids("Metric", "a"), nil)
		stop := run(t, g)
		synctest.Wait()
		stop()
		if isOpen(g) {
			t.Error("a gate stopped while waiting opened")
		}
	})
}

func TestNilGateIsOpen(t *testing.T) {
	var g *Gate
	g.Settled("Metric", name("a"))
	if !isOpen(g) {
		t.Error("a nil gate is closed")
	}
}

func TestNewRefusesInvalidOptions(t *testing.T) {
	for _, o := range []Options{{}, {Existing: func(context.Context) ([]ID, error) { return nil, nil }, Quiet: -1}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

// TestGateWaitsPastQuietWhileUnsettled: a sharded replica's metrics
// settle only once its view of its share has settled; while Unsettled
// says so, a quiet spell does not open the gate, but the limit still
// does, and once the view has settled the quiet rule applies again.
func TestGateWaitsPastQuietWhileUnsettled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var unsettled atomic.Bool
		unsettled.Store(true)
		g, err := New(Options{
			Existing:  func(context.Context) ([]ID, error) { return ids("Metric", "mine", "stuck"), nil },
			Unsettled: unsettled.Load,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer run(t, g)()
		start := time.Now()
		time.Sleep(3 * DefaultQuiet)
		synctest.Wait()
		if isOpen(g) {
			t.Fatal("opened after a quiet spell while the view was unsettled")
		}
		unsettled.Store(false)
		g.Settled("Metric", name("mine"))
		<-g.Open()
		if d, want := time.Since(start), 4*DefaultQuiet; d != want {
			t.Errorf("opened after %s, want %s (quiet since the last metric settled)", d, want)
		}
	})

	synctest.Test(t, func(t *testing.T) {
		g, err := New(Options{
			Existing:  func(context.Context) ([]ID, error) { return ids("Metric", "stuck"), nil },
			Unsettled: func() bool { return true },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer run(t, g)()
		start := time.Now()
		<-g.Open()
		if d := time.Since(start); d != DefaultLimit {
			t.Errorf("a view that never settles opened the gate after %s, want the limit %s", d, DefaultLimit)
		}
	})
}
