package clusters

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusterfault"
	"github.com/SAP/metrics-operator/internal/clustergate"
	"github.com/SAP/metrics-operator/internal/reason"
)

// ErrBusy is Read's answer when the cluster has as many reads in flight
// as it may have, or the namespace of its access as many workers waiting
// on its clusters as it may have: the caller tries again shortly, its
// status unchanged.
var ErrBusy = clustergate.ErrBusy

// Read runs read, which reads conn's cluster, for a worker that must not
// wait on a remote API server: read gets a context bounded by within, and
// when within passes before read returns, Read returns a
// ClusterUnreachable error at once and leaves read to end in the
// background (each of its requests is bounded by remotelimit), still
// counted against the cluster's reads in flight. Whatever read computes
// must therefore stay in read's own variables until it returns nil.
//
// A remote cluster goes through the Set's clustergate.Gate: in back-off
// Read fails at once with a ClusterUnreachable error saying when the
// cluster is tried again; with its reads in flight at their bound it
// fails with ErrBusy, and so it does while as many workers as one
// namespace may have (Options.Backoff.MaxTenantReads) wait on the
// clusters of the namespace of conn's access; a read that finds the
// cluster unreachable, or runs out of time, puts it into back-off. The
// local cluster is read directly, without a bound or a gate.
//
// A worker that reads several clusters side by side makes its reads with
// the context OneWorker returns, so that they take one place of their
// namespace together.
func (s *Set) Read(ctx context.Context, conn *Connection, within time.Duration, read func(ctx context.Context) error) error {
	if !conn.Remote {
		return read(ctx)
	}
	w, own := s.worker(ctx)
	if own {
		// The namespace's place is the worker's: back once it waits no
		// more, even if read goes on in the background.
		defer w.Done()
	}
	pass, err := s.gate.Enter(conn.Key, w)
	if err != nil {
		return s.refusal(conn.Key, err)
	}
	rctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	done, finished := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(finished)
		// The worker's own recovery does not reach this goroutine.
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("reading cluster %s panicked: %v", conn.Key, p)
			}
		}()
		done <- read(rctx)
	}()
	select {
	case err := <-done:
		defer pass.Release()
		if ctx.Err() != nil {
			// Cut short by its caller: nothing is known of the cluster.
			return ctx.Err()
		}
		pass.Report(answered(err))
		return err
	case <-rctx.Done():
		go func() {
			<-finished
			pass.Release()
		}()
		if err := ctx.Err(); err != nil {
			return err
		}
		pass.Report(false)
		return reason.New(v1alpha1.ReasonClusterUnreachable, "%s", clusterfault.Unreachable)
	}
}

// answered reports whether a read's error, if any, leaves the cluster
// answering: anything but ClusterUnreachable, which a remote Lister
// returns for every failure of the cluster as a whole.
func answered(err error) bool {
	return reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable
}

// refusal turns the gate's refusal of a read of cluster key into the
// error metrics report: ErrBusy as it is, a back-off as
// ClusterUnreachable saying when the cluster is tried again. The message
// is the same whatever made the cluster fail, as clusterfault's is.
func (s *Set) refusal(key string, err error) error {
	if errors.Is(err, clustergate.ErrTenantBusy) {
		readsRefused.WithLabelValues(namespaceOf(key)).Inc()
	}
	var b *clustergate.BackoffError
	if !errors.As(err, &b) {
		return err
	}
	if b.Until.IsZero() {
		return reason.New(v1alpha1.ReasonClusterUnreachable,
			"%s: %s. It failed its last tries and is being tried again now; its metrics follow as soon as it answers",
			owner(key), clusterfault.Unreachable)
	}
	return reason.New(v1alpha1.ReasonClusterUnreachable,
		"%s: %s. It failed its last tries, so nothing is read from it before %s UTC, when the operator tries it again "+
			"by itself and its metrics follow; a changed kubeconfig or Secret is tried at once",
		owner(key), clusterfault.Unreachable, b.Until.UTC().Format(time.TimeOnly))
}

// oneWorker is the place in their namespace that the reads made with a
// context of OneWorker share.
type oneWorker struct {
	mu   sync.Mutex
	gate *clustergate.Gate
	w    *clustergate.Worker
}

type oneWorkerKey struct{}

// OneWorker returns a context for the reads one worker waits for side by
// side, which take one place of their namespace together (see Read), and
// the function that gives the place back once they all returned.
func OneWorker(ctx context.Context) (context.Context, func()) {
	o := &oneWorker{}
	return context.WithValue(ctx, oneWorkerKey{}, o), func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.w != nil {
			o.w.Done()
		}
	}
}

// worker returns the gate's Worker a read with ctx is made for: that of
// ctx's OneWorker, or one of its own, which the caller must make Done.
func (s *Set) worker(ctx context.Context) (w *clustergate.Worker, own bool) {
	if o, ok := ctx.Value(oneWorkerKey{}).(*oneWorker); ok {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.w == nil {
			o.gate, o.w = s.gate, s.gate.Worker()
		}
		if o.gate == s.gate {
			return o.w, false
		}
	}
	return s.gate.Worker(), true
}
