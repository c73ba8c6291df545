package informers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/events"
	"github.com/SAP/metrics-operator/internal/informers"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// limitProbe is a metric counting the ConfigMaps of one namespace, with
// what its watch told it.
type limitProbe struct {
	key     registry.InformerKey
	sub     *registry.Subscription
	mu      sync.Mutex
	synced  int   // OnSynced calls
	lastErr error // the last OnError
}

var configMapsGVK = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}

func newLimitProbe(t *testing.T, reg *registry.Registry, m *informers.Manager, id, ns string, metadataOnly bool) *limitProbe {
	t.Helper()
	e, err := evaluation.Compile(evaluation.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	p := &limitProbe{key: registry.InformerKey{Cluster: "local",
		GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespace: ns}}
	p.sub = &registry.Subscription{ID: id, Aggregate: evaluation.NewAggregate(e), MetadataOnly: metadataOnly,
		OnSynced: func() { p.mu.Lock(); p.synced++; p.lastErr = nil; p.mu.Unlock() },
		OnError:  func(err error) { p.mu.Lock(); p.lastErr = err; p.mu.Unlock() }}
	reg.Register(p.key, p.sub)
	p.ensure(t, m)
	return p
}

// ensure is what the metric's reconciler does at every recheck.
func (p *limitProbe) ensure(t *testing.T, m *informers.Manager) {
	t.Helper()
	if err := m.Ensure(p.key, configMapsGVK, p.sub); err != nil {
		t.Fatal(err)
	}
}

func (p *limitProbe) state() (synced int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.synced, p.lastErr
}

// waitOverLimit waits until the probe's watch failed it with
// ObjectLimitExceeded and it holds nothing, and returns that error's
// message.
func (p *limitProbe) waitOverLimit(t *testing.T) (message string) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, func() error {
		_, err := p.state()
		if reason.Of(err, "") != v1alpha1.ReasonObjectLimitExceeded {
			return fmt.Errorf("%s: error %w, want ObjectLimitExceeded", p.sub.ID, err)
		}
		if n := p.sub.Aggregate.Len(); n != 0 {
			return fmt.Errorf("%s holds %d objects over the limit, want none", p.sub.ID, n)
		}
		message = err.Error()
		return nil
	})
	return message
}

// waitHolds waits, ensuring the watch as the reconciler would, until the
// probe is synced without an error and holds n objects.
func (p *limitProbe) waitHolds(t *testing.T, m *informers.Manager, n int) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, func() error {
		p.ensure(t, m)
		synced, err := p.state()
		if err != nil || synced == 0 || !p.sub.Synced() {
			return fmt.Errorf("%s: synced %d times, error %w", p.sub.ID, synced, err)
		}
		if got := p.sub.Aggregate.Len(); got != n {
			return fmt.Errorf("%s holds %d objects, want %d", p.sub.ID, got, n)
		}
		return nil
	})
}

func deleteConfigMaps(t *testing.T, ns string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i), Namespace: ns}}
		if err := env.Client.Delete(t.Context(), cm); err != nil {
			t.Fatal(err)
		}
	}
}

// TestObjectLimit runs watches with MaxObjects 50, streamed and paged:
// one whose list returns 60 objects and one that goes from 40 to 55
// objects while it watches. Each fails its metrics with
// ObjectLimitExceeded, whose message names the limit, the flag, the
// resource and the cluster, and drops what they held, while a watch of
// another namespace beside them keeps its objects and takes changes.
// Once the objects are back under the limit, the next try after
// RetryAfterObjectLimit fills the metrics again.
func TestObjectLimit(t *testing.T) {
	testenv.Require(t, env)
	for _, paged := range []bool{false, true} {
		t.Run(map[bool]string{false: "streamed", true: "paged"}[paged], func(t *testing.T) {
			prefix := map[bool]string{false: "limit-s-", true: "limit-p-"}[paged]
			over, grows, beside := prefix+"over", prefix+"grows", prefix+"beside"
			createConfigMaps(t, over, 60)
			createConfigMaps(t, grows, 40)
			createConfigMaps(t, beside, 5)
			cfg := rest.CopyConfig(env.Config)
			if paged {
				cfg.Wrap(refuseStreamedLists)
			}
			dyn, md := clientsFor(t, cfg)
			reg := registry.New()
			m := newManager(t, reg, &informers.Clients{Dynamic: dyn, Metadata: md},
				informers.Options{MaxObjects: 50, ListPageSize: 10, RetryAfterObjectLimit: time.Second})
			startManager(t, m)

			besideProbe := newLimitProbe(t, reg, m, "beside", beside, true)
			overProbe := newLimitProbe(t, reg, m, "over", over, true)
			growsProbe := newLimitProbe(t, reg, m, "grows", grows, false)
			besideProbe.waitHolds(t, m, 5)
			growsProbe.waitHolds(t, m, 40)

			msg := overProbe.waitOverLimit(t)
			t.Logf("over the limit: %s", msg)
			for _, want := range []string{"50", "--max-objects-per-watch", "configmaps in namespace " + over, "cluster local"} {
				if !strings.Contains(msg, want) {
					t.Errorf("the message does not name %q: %s", want, msg)
				}
			}

			// Live adds over the limit.
			for i := 40; i < 55; i++ {
				if err := env.Client.Create(t.Context(), &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i), Namespace: grows}}); err != nil {
					t.Fatal(err)
				}
			}
			_ = growsProbe.waitOverLimit(t)

			// The watch beside them goes on.
			if err := env.Client.Create(t.Context(), &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "cm-5", Namespace: beside}}); err != nil {
				t.Fatal(err)
			}
			besideProbe.waitHolds(t, m, 6)
			if _, err := besideProbe.state(); err != nil {
				t.Errorf("the watch beside reported %v", err)
			}

			// Back under the limit: the next try fills them again.
			deleteConfigMaps(t, over, 0, 20)
			deleteConfigMaps(t, grows, 0, 10)
			overProbe.waitHolds(t, m, 40)
			growsProbe.waitHolds(t, m, 45)
		})
	}
}

// ignoreLimit stands for an API server that ignores the limit of a LIST
// and answers with every object in one page: it forwards LISTs of the
// ConfigMaps of ns without limit or continue.
func ignoreLimit(ns string) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			q := r.URL.Query()
			if r.Method != http.MethodGet || q.Get("watch") == "true" ||
				r.URL.Path != "/api/v1/namespaces/"+ns+"/configmaps" {
				return rt.RoundTrip(r)
			}
			q.Del("limit")
			q.Del("continue")
			r = r.Clone(r.Context())
			r.URL.RawQuery = q.Encode()
			return rt.RoundTrip(r)
		})
	}
}

// TestObjectLimitHoldsForOnePage lists 60 ConfigMaps with MaxObjects 50
// from a server that ignores limit and answers with one page of all 60:
// the watch fails its metric with ObjectLimitExceeded without a single
// object of that page being evaluated, as it would against a server
// that sends ten million, and does not list again within
// RetryAfterObjectLimit however often its metric is rechecked.
func TestObjectLimitHoldsForOnePage(t *testing.T) {
	testenv.Require(t, env)
	const ns = "limit-one-page"
	createConfigMaps(t, ns, 60)
	m, reg, requests := countedManager(t, informers.Options{MaxObjects: 50, ListPageSize: 10, RetryAfterObjectLimit: time.Hour},
		refuseStreamedLists, ignoreLimit(ns))
	var evaluated atomic.Int64
	events.SetTestHook(func(id string, _ map[string]any) {
		if id == "one-page" {
			evaluated.Add(1)
		}
	})
	defer events.SetTestHook(nil)

	p := newLimitProbe(t, reg, m, "one-page", ns, true)
	_ = p.waitOverLimit(t)
	if n := evaluated.Load(); n != 0 {
		t.Fatalf("%d objects of the page over the limit were evaluated, want none", n)
	}
	// Within RetryAfterObjectLimit, the reconciler's rechecks do not list
	// again: they are told the same error.
	path := "/api/v1/namespaces/" + ns + "/configmaps"
	lists := requests.Count("LIST", path)
	for range 5 {
		p.ensure(t, m)
		time.Sleep(500 * time.Millisecond)
	}
	if n := requests.Count("LIST", path) - lists; n != 0 {
		t.Errorf("%d LISTs within the retry period after the watch went over its limit, want none", n)
	}
	if _, err := p.state(); reason.Of(err, "") != v1alpha1.ReasonObjectLimitExceeded {
		t.Errorf("a recheck within the retry period reported %v, want ObjectLimitExceeded", err)
	}
	if lists != 1 {
		t.Errorf("%d LISTs before the watch stopped, want the one page", lists)
	}
	// The same server under the limit is served: its one page is fine.
	deleteConfigMaps(t, ns, 0, 20)
	m2, reg2, _ := countedManager(t, informers.Options{MaxObjects: 50, ListPageSize: 10}, refuseStreamedLists, ignoreLimit(ns))
	newLimitProbe(t, reg2, m2, "under", ns, true).waitHolds(t, m2, 40)
}

// floodLists stands for an API server with n more ConfigMaps in ns than
// the test control plane has: each LIST of them is the control plane's
// (for its resource version) with up to limit synthetic ConfigMaps added
// and a continue token for the rest.
func floodLists(ns string, n int) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			q := r.URL.Query()
			if r.Method != http.MethodGet || q.Get("watch") == "true" ||
				r.URL.Path != "/api/v1/namespaces/"+ns+"/configmaps" {
				return rt.RoundTrip(r)
			}
			from, _ := strconv.Atoi(strings.TrimPrefix(q.Get("continue"), "flood-"))
			limit, _ := strconv.Atoi(q.Get("limit"))
			if limit <= 0 {
				limit = n
			}
			q.Del("continue")
			r = r.Clone(r.Context())
			r.URL.RawQuery = q.Encode()
			resp, err := rt.RoundTrip(r)
			if err != nil || resp.StatusCode != http.StatusOK {
				return resp, err
			}
			var list map[string]any
			err = json.NewDecoder(resp.Body).Decode(&list)
			_ = resp.Body.Close()
			if err != nil {
				return nil, err
			}
			items, _ := list["items"].([]any)
			to := min(from+limit, n)
			for i := from; i < to; i++ {
				items = append(items, map[string]any{"metadata": map[string]any{
					"name": fmt.Sprint("flood-", i), "namespace": ns, "resourceVersion": "1",
					"uid": fmt.Sprintf("00000000-0000-4000-8000-%012d", i)}})
			}
			list["items"] = items
			md, _ := list["metadata"].(map[string]any)
			if to < n {
				md["continue"] = fmt.Sprint("flood-", to)
			}
			body, err := json.Marshal(list)
			if err != nil {
				return nil, err
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Del("Content-Length")
			return resp, nil
		})
	}
}

// TestObjectLimitMemory measures what a watch of 200,000 ConfigMaps
// (served by floodLists, 1,000 a page) keeps in memory with no limit and
// with MaxObjects 1,000, for a metric counting them: the heap after a
// garbage collection once the watch synced or failed, against before it
// started, and the peak heap in use meanwhile. Over the limit the watch
// must keep next to nothing.
func TestObjectLimitMemory(t *testing.T) {
	testenv.Require(t, env)
	if testing.Short() {
		t.Skip("lists 200,000 objects")
	}
	const ns, objects = "limit-flood", 200000
	createConfigMaps(t, ns, 0)
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(refuseStreamedLists)
	cfg.Wrap(floodLists(ns, objects))
	dyn, md := clientsFor(t, cfg)
	measure := func(t *testing.T, limit int) (retained, peak uint64) {
		reg := registry.New()
		m := newManager(t, reg, &informers.Clients{Dynamic: dyn, Metadata: md},
			informers.Options{MaxObjects: limit, RetryAfterObjectLimit: time.Hour})
		before := heapAfterGC()
		var peakInUse atomic.Uint64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peakInUse.Load() {
					peakInUse.Store(ms.HeapInuse)
				}
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
		startManager(t, m)
		p := newLimitProbe(t, reg, m, "flood", ns, false)
		start := time.Now()
		if limit > 0 {
			_ = p.waitOverLimit(t)
		} else {
			p.waitHolds(t, m, objects)
		}
		elapsed := time.Since(start)
		close(stop)
		<-sampled
		after := heapAfterGC()
		if after > before {
			retained = after - before
		}
		t.Logf("limit %d: %d objects held, heap retained %.1f MiB (%.0f B an object listed), peak heap in use %.1f MiB, in %s",
			limit, p.sub.Aggregate.Len(), mib(retained), float64(retained)/objects, mib(peakInUse.Load()), elapsed.Round(time.Millisecond))
		runtime.KeepAlive(p)
		return retained, peakInUse.Load()
	}
	var unlimited, limited uint64
	t.Run("no limit", func(t *testing.T) { unlimited, _ = measure(t, -1) })
	t.Run("limit 1000", func(t *testing.T) { limited, _ = measure(t, 1000) })
	if limited > 8<<20 || limited*10 > unlimited {
		t.Errorf("over the limit the watch keeps %.1f MiB, without a limit %.1f MiB: want under 8 MiB and a tenth",
			mib(limited), mib(unlimited))
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
