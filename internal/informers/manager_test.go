package informers_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/events"
	"github.com/SAP/metrics-operator/internal/informers"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	testenv.Main(m, &env)
}

// TestEnsureBeforeStartQueues ensures a watch before the Manager runs, as
// a metric reconciled before the manager starts its Runnables does: that
// is no error, nothing is watched yet, and Start starts the watch, whose
// list fills the metric. A watch released before Start never starts.
func TestEnsureBeforeStartQueues(t *testing.T) {
	testenv.Require(t, env)
	const ns = "ensure-before-start"
	createConfigMaps(t, ns, 3)
	dyn, md := clientsFor(t, env.Config)
	reg := registry.New()
	m := newManager(t, reg, &informers.Clients{Dynamic: dyn, Metadata: md}, informers.Options{})

	e, err := evaluation.Compile(evaluation.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	gvk := schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	configMaps := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	key := registry.InformerKey{Cluster: "local", GVR: configMaps, Namespace: ns}
	synced := make(chan struct{})
	sub := &registry.Subscription{ID: "kept", Aggregate: evaluation.NewAggregate(e), MetadataOnly: true,
		OnSynced: func() { close(synced) }, OnError: func(err error) { t.Errorf("watch failed: %v", err) }}
	reg.Register(key, sub)
	if err := m.Ensure(key, gvk, sub); err != nil {
		t.Fatalf("Ensure before Start: %v", err)
	}
	released := registry.InformerKey{Cluster: "local", GVR: configMaps, Namespace: "released"}
	gone := &registry.Subscription{ID: "released", Aggregate: evaluation.NewAggregate(e), MetadataOnly: true}
	reg.Register(released, gone)
	if err := m.Ensure(released, gvk, gone); err != nil {
		t.Fatalf("Ensure before Start: %v", err)
	}
	reg.Unregister(gone.ID)
	m.Release(released)
	if active := m.Active(); len(active) != 0 {
		t.Fatalf("watches %v run before Start", active)
	}

	startManager(t, m)
	select {
	case <-synced:
	case <-time.After(30 * time.Second):
		t.Fatal("the queued watch did not fill its metric within 30s of Start")
	}
	if n := sub.Aggregate.Len(); n != 3 {
		t.Errorf("the metric holds %d objects, want 3", n)
	}
	if active := m.Active(); len(active) != 1 || active[0] != key {
		t.Errorf("active watches %v, want only %v", active, key)
	}
}

// TestJoinListStopsWhenItsMetricsAreGone lets a metric join a running
// watch, which lists for it page by page, and drops the metric while the
// first page is applied: the list stops before its next page instead of
// reading the rest for nobody, and the metric that was there first keeps
// its objects.
func TestJoinListStopsWhenItsMetricsAreGone(t *testing.T) {
	testenv.Require(t, env)
	const ns, objects, page = "join-abandoned", 50, 10
	createConfigMaps(t, ns, objects)
	m, reg, requests := countedManager(t, informers.Options{ListPageSize: page})

	e, err := evaluation.Compile(evaluation.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	gvk := schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	key := registry.InformerKey{Cluster: "local", GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespace: ns}
	subscribe := func(id string) (*registry.Subscription, chan struct{}) {
		synced := make(chan struct{})
		sub := &registry.Subscription{ID: id, Aggregate: evaluation.NewAggregate(e), MetadataOnly: true,
			OnSynced: func() { close(synced) }, OnError: func(err error) { t.Errorf("%s: watch failed: %v", id, err) }}
		reg.Register(key, sub)
		if err := m.Ensure(key, gvk, sub); err != nil {
			t.Fatal(err)
		}
		return sub, synced
	}
	first, synced := subscribe("first")
	select {
	case <-synced:
	case <-time.After(30 * time.Second):
		t.Fatal("the watch did not sync within 30s")
	}
	path := "/api/v1/namespaces/" + ns + "/configmaps"
	before := requests.Count("LIST", path)

	dropped := make(chan struct{})
	var once sync.Once
	events.SetTestHook(func(id string, _ map[string]any) {
		if id == "joiner" {
			once.Do(func() {
				reg.Unregister("joiner")
				close(dropped)
			})
		}
	})
	defer events.SetTestHook(nil)
	joiner, joined := subscribe("joiner")
	select {
	case <-dropped:
	case <-time.After(30 * time.Second):
		t.Fatal("the join list never reached the joining metric")
	}
	// A metric joining after the drop gets a complete list of its own;
	// once it is filled, the dropped joiner's list is over too.
	_, settled := subscribe("witness")
	select {
	case <-settled:
	case <-time.After(30 * time.Second):
		t.Fatal("a later joiner was not filled within 30s")
	}
	pages := requests.Count("LIST", path) - before
	// The witness's own fill reads all objects/page+1 pages; the abandoned
	// list must have stopped after its first.
	if limit := objects/page + 1 + 1; pages > limit {
		t.Fatalf("%d LIST pages after the joiner was dropped on its first page, want at most %d", pages, limit)
	}
	select {
	case <-joined:
		t.Error("the dropped joiner was told it synced")
	default:
	}
	if joiner.Active() {
		t.Error("the joiner is still active")
	}
	if n := first.Aggregate.Len(); n != objects {
		t.Errorf("the first metric holds %d objects, want %d", n, objects)
	}
	t.Logf("join LIST pages: %d for the dropped joiner and the witness together (%d objects, pages of %d)", pages, objects, page)
}

// TestRegisteredHoldsWatchesBack runs the Manager with
// Options.Registered: watches Ensured after Start wait until it is
// closed, then start with every metric registered meanwhile, so that one
// LIST fills them all: a metadata-only metric and one that needs full
// objects, whichever came first, cost one LIST and no restart.
func TestRegisteredHoldsWatchesBack(t *testing.T) {
	testenv.Require(t, env)
	const ns, objects = "registered-gate", 5
	createConfigMaps(t, ns, objects)
	registered := make(chan struct{})
	m, reg, requests := countedManager(t, informers.Options{Registered: registered})

	e, err := evaluation.Compile(evaluation.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	gvk := schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	key := registry.InformerKey{Cluster: "local", GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespace: ns}
	var synced []chan struct{}
	var subs []*registry.Subscription
	for i, metadataOnly := range []bool{true, false} {
		ch := make(chan struct{})
		sub := &registry.Subscription{ID: fmt.Sprint("m", i), Aggregate: evaluation.NewAggregate(e), MetadataOnly: metadataOnly,
			OnSynced: func() { close(ch) }, OnError: func(err error) { t.Errorf("watch failed: %v", err) }}
		reg.Register(key, sub)
		if err := m.Ensure(key, gvk, sub); err != nil {
			t.Fatal(err)
		}
		synced, subs = append(synced, ch), append(subs, sub)
		time.Sleep(100 * time.Millisecond) // a watch started now would be listing
		if active := m.Active(); len(active) != 0 {
			t.Fatalf("watches %v run before Registered is closed", active)
		}
	}
	close(registered)
	for i, ch := range synced {
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("m%d was not filled within 30s of Registered closing", i)
		}
		if n := subs[i].Aggregate.Len(); n != objects {
			t.Errorf("m%d holds %d objects, want %d", i, n, objects)
		}
	}
	if n := requests.Reads("/api/v1/namespaces/" + ns + "/configmaps"); n != 1 {
		t.Errorf("%d reads of the ConfigMaps (LIST pages and streamed lists), want 1", n)
	}
}

// createConfigMaps creates the namespace ns with n ConfigMaps cm-0 ...
func createConfigMaps(t *testing.T, ns string, n int) {
	t.Helper()
	if err := env.Client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i), Namespace: ns}}
		if err := env.Client.Create(t.Context(), cm); err != nil {
			t.Fatal(err)
		}
	}
}

// countedManager runs a Manager with opts over a registry of its own
// until the test ends, reaching the test's API server through wraps (the
// first innermost) and, outermost, a RequestCounter that counts what the
// Manager asked.
func countedManager(t *testing.T, opts informers.Options, wraps ...transport.WrapperFunc) (*informers.Manager, *registry.Registry, *testenv.RequestCounter) {
	t.Helper()
	requests := testenv.NewRequestCounter()
	cfg := rest.CopyConfig(env.Config)
	for _, w := range wraps {
		cfg.Wrap(w)
	}
	cfg.Wrap(requests.Wrap)
	dyn, md := clientsFor(t, cfg)
	reg := registry.New()
	m := newManager(t, reg, &informers.Clients{Dynamic: dyn, Metadata: md}, opts)
	startManager(t, m)
	return m, reg, requests
}

// newManager builds a Manager with opts over reg, reaching every cluster
// through c.
func newManager(t *testing.T, reg *registry.Registry, c *informers.Clients, opts informers.Options) *informers.Manager {
	t.Helper()
	opts.Registry, opts.Handler = reg, &events.Handler{Registry: reg}
	opts.Clients = func(string) (*informers.Clients, error) { return c, nil }
	m, err := informers.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// startManager runs m until the test ends, and checks that Start then
// returns without an error.
func startManager(t *testing.T, m *informers.Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start returned %v", err)
		}
	})
}

// clientsFor returns the dynamic and metadata clients of cfg.
func clientsFor(t *testing.T, cfg *rest.Config) (dynamic.Interface, metadata.Interface) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	md, err := informers.NewMetadataClient(cfg, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	return dyn, md
}
