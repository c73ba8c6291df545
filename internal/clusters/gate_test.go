package clusters

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusterfault"
	"github.com/SAP/metrics-operator/internal/clustergate"
	"github.com/SAP/metrics-operator/internal/reason"
)

// silentListener accepts connections and never answers on them, as the
// API server of a tenant who wants to hold the operator's workers.
type silentListener struct {
	net.Listener
	accepted atomic.Int64
}

func silent(t *testing.T) *silentListener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentListener{Listener: l}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return s
}

// gatedSet is a Set with the given back-off whose clusters' changes are
// sent to the returned channel.
func gatedSet(t *testing.T, backoff clustergate.Options) (*Set, <-chan string) {
	t.Helper()
	s, err := New(Options{Local: &rest.Config{Host: "https://local"}, LocalName: "local",
		LocalMapper: meta.NewDefaultRESTMapper(nil), Backoff: backoff})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	changed := make(chan string, 16)
	s.Subscribe(func(key string) {
		select {
		case changed <- key:
		default:
		}
	})
	return s, changed
}

var configMaps = &meta.RESTMapping{Resource: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"},
	GroupVersionKind: schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Scope: meta.RESTScopeNamespace}

// listConfigMaps is a poll's read of conn.
func listConfigMaps(conn *Connection) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		_, err := conn.Lister.List(ctx, configMaps, "ns", "")
		return err
	}
}

// drain empties changed.
func drain(changed <-chan string) {
	for {
		select {
		case <-changed:
		default:
			return
		}
	}
}

func define(t *testing.T, s *Set, key, host string) *Connection {
	t.Helper()
	if err := s.Define(key, "c", Definition{Config: &rest.Config{Host: host}}); err != nil {
		t.Fatal(err)
	}
	conn, err := s.Acquire(key, "metric-"+key)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestReadLeavesAHangingClusterBehind: a read of a cluster that never
// answers returns ClusterUnreachable when its bound passes, not when the
// request's own minute does; the cluster is then in back-off: reads and
// the access's probe fail at once, saying until when, and nothing
// connects to the server; the cluster's metrics are told.
func TestReadLeavesAHangingClusterBehind(t *testing.T) {
	l := silent(t)
	s, changed := gatedSet(t, clustergate.Options{Base: time.Minute})
	conn := define(t, s, "ns/hang", "http://"+l.Addr().String())
	drain(changed) // the definition's own

	start := time.Now()
	err := s.Read(t.Context(), conn, 300*time.Millisecond, listConfigMaps(conn))
	took := time.Since(start)
	if reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable || err.Error() != clusterfault.Unreachable {
		t.Fatalf("read: %v, want ClusterUnreachable with the fixed message", err)
	}
	if took > 5*time.Second {
		t.Errorf("the read returned after %s, want about its 300ms bound", took)
	}
	select {
	case key := <-changed:
		if key != "ns/hang" {
			t.Errorf("told %q, want ns/hang", key)
		}
	case <-time.After(5 * time.Second):
		t.Error("the cluster's metrics were not told it went into back-off")
	}
	seen := l.accepted.Load()
	for name, try := range map[string]func() error{
		"read":  func() error { return s.Read(t.Context(), conn, time.Minute, listConfigMaps(conn)) },
		"probe": func() error { return s.Probe(t.Context(), "ns/hang") },
	} {
		start := time.Now()
		err := try()
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s during back-off took %s, want at once", name, took)
		}
		msg := err.Error()
		if reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable || !strings.Contains(msg, "RemoteClusterAccess ns/hang") ||
			!strings.Contains(msg, clusterfault.Unreachable) || !strings.Contains(msg, " UTC") {
			t.Errorf("%s during back-off: %v; want ClusterUnreachable naming the access, the fixed cause and when it is tried again", name, err)
		}
		t.Logf("%s: %s", name, msg)
	}
	if n := l.accepted.Load(); n != seen {
		t.Errorf("the server saw %d more connections during back-off, want none", n-seen)
	}

	// A new definition of the cluster is another cluster: tried at once.
	conn = define(t, s, "ns/hang", "http://localhost:"+port(l))
	err = s.Read(t.Context(), conn, 300*time.Millisecond, listConfigMaps(conn))
	if reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable || err.Error() != clusterfault.Unreachable {
		t.Fatalf("read after a new definition: %v, want it tried (and time out)", err)
	}
}

// TestReadsInFlightPerCluster: a cluster has at most two reads in flight;
// a third is refused with ErrBusy at once, while another cluster and the
// local one are read.
func TestReadsInFlightPerCluster(t *testing.T) {
	l, other := silent(t), silent(t)
	s, _ := gatedSet(t, clustergate.Options{})
	conn := define(t, s, "ns/hang", "http://"+l.Addr().String())
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range clustergate.DefaultMaxReads {
		wg.Go(func() {
			if err := s.Read(ctx, conn, time.Minute, listConfigMaps(conn)); !errors.Is(err, context.Canceled) {
				t.Errorf("a read cancelled by its caller: %v", err)
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.accepted.Load() < clustergate.DefaultMaxReads && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Read(t.Context(), conn, time.Minute, listConfigMaps(conn)); !errors.Is(err, ErrBusy) {
		t.Errorf("a third read: %v, want ErrBusy", err)
	}
	otherConn := define(t, s, "neighbour/other", "http://"+other.Addr().String())
	if err := s.Read(t.Context(), otherConn, 200*time.Millisecond, listConfigMaps(otherConn)); reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable {
		t.Errorf("another cluster's read: %v, want it tried (and time out)", err)
	}
	local := 0
	if err := s.Read(t.Context(), s.Local(), time.Nanosecond, func(context.Context) error {
		time.Sleep(10 * time.Millisecond)
		local++
		return nil
	}); err != nil || local != 1 {
		t.Errorf("the local cluster: %v, read %d times; want read without a bound or a gate", err, local)
	}
	cancel()
	wg.Wait()
	// A read its caller cancelled says nothing about the cluster; its
	// place is given back once its request has ended.
	deadline = time.Now().Add(10 * time.Second)
	for {
		err := s.Read(t.Context(), conn, 200*time.Millisecond, listConfigMaps(conn))
		if errors.Is(err, ErrBusy) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable || err.Error() != clusterfault.Unreachable {
			t.Errorf("a read after cancelled ones: %v, want it tried", err)
		}
		break
	}
}

// waitAccepted waits until every listener accepted a connection.
func waitAccepted(t *testing.T, ls ...*silentListener) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, l := range ls {
		for l.accepted.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("a read did not reach its server")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// refused returns the reads of namespace ns refused so far.
func refused(t *testing.T, ns string) float64 {
	t.Helper()
	var m dto.Metric
	if err := readsRefused.WithLabelValues(ns).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestReadsInFlightPerNamespace: the clusters of one namespace's accesses,
// however many, have at most two workers waiting on them together; a
// read of a third cluster of the namespace is refused at once with
// ErrBusy, without a condition, and counted, while a cluster of another
// namespace is read; a worker that stops waiting gives its place back.
func TestReadsInFlightPerNamespace(t *testing.T) {
	a, b, c, other := silent(t), silent(t), silent(t), silent(t)
	s, _ := gatedSet(t, clustergate.Options{})
	connA, connB := define(t, s, "tenant/a", "http://"+a.Addr().String()), define(t, s, "tenant/b", "http://"+b.Addr().String())
	connC := define(t, s, "tenant/fleet/ns/c", "http://"+c.Addr().String()) // a federated access's cluster
	cancels := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	for _, conn := range []*Connection{connA, connB} {
		ctx, cancel := context.WithCancel(t.Context())
		cancels[conn.Key] = cancel
		wg.Go(func() { _ = s.Read(ctx, conn, time.Minute, listConfigMaps(conn)) })
	}
	defer func() {
		for _, cancel := range cancels {
			cancel()
		}
		wg.Wait()
	}()
	waitAccepted(t, a, b)

	before := refused(t, "tenant")
	start := time.Now()
	err := s.Read(t.Context(), connC, 5*time.Second, listConfigMaps(connC))
	if !errors.Is(err, ErrBusy) || reason.Of(err, "") != "" {
		t.Fatalf("a read of the namespace's third cluster: %v, want ErrBusy without a reason", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the refusal took %s, want at once", took)
	}
	if n := c.accepted.Load(); n != 0 {
		t.Errorf("the refused read connected %d times, want none", n)
	}
	if got := refused(t, "tenant") - before; got != 1 {
		t.Errorf("metrics_operator_remote_reads_refused_total{namespace=tenant} grew by %v, want 1", got)
	}
	otherConn := define(t, s, "neighbour/other", "http://"+other.Addr().String())
	if err := s.Read(t.Context(), otherConn, 200*time.Millisecond, listConfigMaps(otherConn)); reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable {
		t.Errorf("another namespace's read: %v, want it tried (and time out)", err)
	}

	cancels["tenant/a"]()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Read(t.Context(), connC, 200*time.Millisecond, listConfigMaps(connC))
		if errors.Is(err, ErrBusy) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable {
			t.Errorf("a read once a worker of the namespace stopped waiting: %v, want it tried (and time out)", err)
		}
		break
	}
}

// TestOneWorkerReadsSideBySide: the reads one worker makes side by side
// (a federated poll) take one place of their namespace together: three
// clusters of one namespace are read at once, and one place is left for
// another worker until the first is done.
func TestOneWorkerReadsSideBySide(t *testing.T) {
	ls := []*silentListener{silent(t), silent(t), silent(t)}
	last := silent(t)
	s, _ := gatedSet(t, clustergate.Options{})
	ctx, done := OneWorker(t.Context())
	var wg sync.WaitGroup
	errs := make([]error, len(ls))
	for i, l := range ls {
		conn := define(t, s, fmt.Sprintf("tenant/fleet/ns/c%d", i), "http://"+l.Addr().String())
		wg.Go(func() { errs[i] = s.Read(ctx, conn, 3*time.Second, listConfigMaps(conn)) })
	}
	waitAccepted(t, ls...)
	lastConn := define(t, s, "tenant/last", "http://"+last.Addr().String())
	other, cancel := context.WithCancel(t.Context())
	otherDone := make(chan error, 1)
	go func() { otherDone <- s.Read(other, lastConn, time.Minute, listConfigMaps(lastConn)) }()
	waitAccepted(t, last)
	extra := define(t, s, "tenant/extra", "http://"+last.Addr().String())
	if err := s.Read(t.Context(), extra, time.Minute, listConfigMaps(extra)); !errors.Is(err, clustergate.ErrTenantBusy) {
		t.Errorf("a third worker of the namespace: %v, want ErrTenantBusy", err)
	}
	wg.Wait()
	for i, err := range errs {
		if reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable {
			t.Errorf("read %d side by side: %v, want it tried (and time out)", i, err)
		}
	}
	done()
	cancel()
	if err := <-otherDone; !errors.Is(err, context.Canceled) {
		t.Errorf("the other worker's read, cancelled: %v", err)
	}
	fresh := define(t, s, "tenant/fresh", "http://"+last.Addr().String())
	if err := s.Read(t.Context(), fresh, 200*time.Millisecond, listConfigMaps(fresh)); reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable {
		t.Errorf("a read once both workers were done: %v, want it tried (and time out)", err)
	}
}

// TestClusterFoundBack: a cluster in back-off is probed by the Set when
// its back-off ends; while the server hangs the probe fails and the
// back-off goes on, and once it answers the probe finds it back: its
// metrics are told and read again.
func TestClusterFoundBack(t *testing.T) {
	var hanging atomic.Bool
	hanging.Store(true)
	released := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hanging.Load() {
			select {
			case <-r.Context().Done():
				return
			case <-released:
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api" {
			_, _ = io.WriteString(w, `{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[]}`)
			return
		}
		_, _ = io.WriteString(w, `{"kind":"ConfigMapList","apiVersion":"v1","metadata":{},"items":[]}`)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if hanging.CompareAndSwap(true, false) {
			close(released)
		}
	})
	s, changed := gatedSet(t, clustergate.Options{Base: 200 * time.Millisecond, Max: 200 * time.Millisecond})
	conn := define(t, s, "ns/back", srv.URL)
	drain(changed) // the definition's own
	if err := s.Read(t.Context(), conn, 300*time.Millisecond, listConfigMaps(conn)); reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable {
		t.Fatalf("read of the hanging server: %v", err)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("the cluster's metrics were not told it went into back-off")
	}
	time.Sleep(time.Second)
	if err := s.Read(t.Context(), conn, time.Minute, listConfigMaps(conn)); reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable {
		t.Fatalf("read while the server hangs and is probed: %v, want ClusterUnreachable at once", err)
	}
	answered := time.Now()
	hanging.Store(false)
	close(released)
	select {
	case <-changed:
		t.Logf("found back %s after the server answered", time.Since(answered).Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatal("the cluster was not found back")
	}
	if err := s.Read(t.Context(), conn, time.Minute, listConfigMaps(conn)); err != nil {
		t.Fatalf("read after the cluster was found back: %v", err)
	}
}
