package operator_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusterfault"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/remotelimit"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// hostileRemote is a remote cluster's API server as a hostile tenant may
// run it: the test control plane behind a TLS proxy that refuses
// streamed lists (so that watches list page by page), unless intercept
// answers a request itself, which it does when it returns true. It
// creates the namespace, the kubeconfig Secret and the
// RemoteClusterAccess "tenant" in ns.
func hostileRemote(t *testing.T, ns string, intercept func(w http.ResponseWriter, r *http.Request) bool) {
	t.Helper()
	kubeconfig := remoteProxy(t, intercept)
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: ns},
		Data: map[string][]byte{"kubeconfig": kubeconfig}})
	mustCreate(t, &v1alpha1.RemoteClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: ns},
		Spec: v1alpha1.RemoteClusterAccessSpec{KubeConfigSecretRef: &v1alpha1.KubeConfigSecretReference{Name: "tenant"}}})
}

// configMapsOf reports whether r reads the ConfigMaps of ns, and whether
// as a watch.
func configMapsOf(r *http.Request, ns string) (ok, watching bool) {
	return r.Method == http.MethodGet && r.URL.Path == "/api/v1/namespaces/"+ns+"/configmaps", r.URL.Query().Get("watch") == "true"
}

// runRemote creates metrics, deleted when the test ends, and runs the
// operator with its default limits; it returns the /metrics URL.
func runRemote(t *testing.T, ns string, metrics ...*v1alpha1.Metric) string {
	t.Helper()
	return runMetrics(t, operator.Options{Namespace: ns}, metrics...)
}

// neighboursServe waits until the remote cluster's Secrets metric and the
// local one serve, and the local one follows a new Secret in ns: a
// hostile answer on one watch harms no other.
func neighboursServe(t *testing.T, url, prefix, ns string) {
	t.Helper()
	waitFamilyWithin(t, 60*time.Second, url, prefix+"secrets", "{cluster=tenant,kind=Secret,version=v1} 1")
	waitFamilyWithin(t, 30*time.Second, url, prefix+"local", "{cluster=local,kind=Secret,version=v1} 1")
	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "more", Namespace: ns}})
	waitFamilyWithin(t, 30*time.Second, url, prefix+"local", "{cluster=local,kind=Secret,version=v1} 2")
}

// heapSampler records the largest heap in use while it runs.
type heapSampler struct {
	base uint64 // heap in use after a collection, at the start
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func sampleHeap() *heapSampler {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := &heapSampler{base: ms.HeapInuse, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > h.peak.Load() {
				h.peak.Store(ms.HeapInuse)
			}
			select {
			case <-h.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return h
}

// finish stops sampling and returns the peak's growth over the start and
// the heap in use after a collection, over the start.
func (h *heapSampler) finish() (peak, after int64) {
	close(h.stop)
	<-h.done
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(h.peak.Load()) - int64(h.base), int64(ms.HeapInuse) - int64(h.base)
}

func mibOf(b int64) float64 { return float64(b) / (1 << 20) }

// sentLog records how many bytes a hostile server sent per request.
type sentLog struct {
	mu   sync.Mutex
	sent []int64
}

func (l *sentLog) add(n int64) { l.mu.Lock(); l.sent = append(l.sent, n); l.mu.Unlock() }
func (l *sentLog) all() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int64(nil), l.sent...)
}

// TestRemoteListPageTooLarge: a tenant's remote API server answers every
// LIST of the ConfigMaps of ns with one page of 512 MiB, streamed. With
// the default --max-remote-response-bytes (32 MiB), the event-driven and
// the polling Metric of them report ResponseTooLarge naming the
// RemoteClusterAccess and the flag and export nothing; the operator stops
// reading each page after about the limit; a Metric of the same
// cluster's Secrets and one of the local cluster's serve; the operator's
// heap stays within a few times the limit (measured here), not the page.
func TestRemoteListPageTooLarge(t *testing.T) {
	testenv.Require(t, env)
	const ns, page = "remote-huge-list", 512 << 20
	var item bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&item, `,{"metadata":{"name":"cm-%d","namespace":%q,"resourceVersion":"1"},"data":{"k":%q}}`, i, ns, strings.Repeat("x", 1000))
	}
	block := item.Bytes()
	var sent sentLog
	hostileRemote(t, ns, func(w http.ResponseWriter, r *http.Request) bool {
		if ok, watching := configMapsOf(r, ns); !ok || watching {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		n, _ := io.WriteString(w, `{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"first"}}`)
		total := int64(n)
		for total < page {
			n, err := w.Write(block)
			total += int64(n)
			if err != nil {
				break
			}
		}
		_, _ = io.WriteString(w, "]}")
		sent.add(total)
		return true
	})
	const prefix = "remote_huge_list_"
	events, polled := limitMetric(ns, prefix, "events", "ConfigMap", true, true), limitMetric(ns, prefix, "polled", "ConfigMap", false, true)
	secrets, local := limitMetric(ns, prefix, "secrets", "Secret", true, true), limitMetric(ns, prefix, "local", "Secret", true, false)
	heap := sampleHeap()
	start := time.Now()
	url := runRemote(t, ns, events, polled, secrets, local)

	for _, m := range []*v1alpha1.Metric{events, polled} {
		c := waitMetricReason(t, ns, m.Name, v1alpha1.ReasonResponseTooLarge, 90*time.Second)
		for _, want := range []string{"RemoteClusterAccess " + ns + "/tenant", "--max-remote-response-bytes", "configmaps in namespace " + ns,
			fmt.Sprint(remotelimit.DefaultMaxResponseBytes)} {
			if c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, want) {
				t.Errorf("%s: Ready=%s: %s; want False naming %q", m.Name, c.Status, c.Message, want)
			}
		}
	}
	t.Logf("both metrics refused %s after the start", time.Since(start).Round(time.Millisecond))
	neighboursServe(t, url, prefix, ns)
	waitFamilyWithin(t, 30*time.Second, url, prefix+"events")
	waitFamilyWithin(t, 30*time.Second, url, prefix+"polled")
	peak, after := heap.finish()

	lists := sent.all()
	t.Logf("pages of 512 MiB asked for: %d; bytes the server could send of each: %v", len(lists), lists)
	t.Logf("heap in use: peak %.1f MiB above the start, %.1f MiB above it after a collection at the end", mibOf(peak), mibOf(after))
	if len(lists) == 0 {
		t.Fatal("the hostile server was never asked for a page")
	}
	for _, n := range lists {
		if n > 2*remotelimit.DefaultMaxResponseBytes {
			t.Errorf("the operator read %d bytes of a page, want about the limit %d", n, remotelimit.DefaultMaxResponseBytes)
		}
	}
	// Two reads at once (the watch's and the poll's), each holding up to
	// about 2.5 times the limit in client-go's growing buffer.
	if bound := int64(8 * remotelimit.DefaultMaxResponseBytes); peak > bound || after > 32<<20 {
		t.Errorf("heap in use grew by %.1f MiB at its peak and %.1f MiB in the end; want under %.0f MiB and 32 MiB",
			mibOf(peak), mibOf(after), mibOf(bound))
	}
}

// TestRemoteWatchEventTooLarge: a tenant's remote API server lists the
// ConfigMaps of ns as they are, then sends one watch event of 512 MiB,
// streamed. The event-driven Metric of them reports ResponseTooLarge
// naming the RemoteClusterAccess and the flag and exports nothing; the
// operator stops reading after about 16 MiB; a Metric of the same
// cluster's Secrets and one of the local cluster's serve.
func TestRemoteWatchEventTooLarge(t *testing.T) {
	testenv.Require(t, env)
	const ns, event = "remote-huge-event", 512 << 20
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	var sent sentLog
	hostileRemote(t, ns, func(w http.ResponseWriter, r *http.Request) bool {
		if ok, watching := configMapsOf(r, ns); !ok || !watching || r.URL.Query().Get("sendInitialEvents") == "true" {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		n, _ := fmt.Fprintf(w, `{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"huge","namespace":%q,"resourceVersion":"99999999"},"data":{"k":"`, ns)
		total := int64(n)
		for total < event {
			n, err := w.Write(chunk)
			total += int64(n)
			if err != nil {
				break
			}
		}
		_, _ = io.WriteString(w, "\"}}}\n")
		sent.add(total)
		return true
	})
	createConfigMaps(t, ns, 3)
	const prefix = "remote_huge_event_"
	events := limitMetric(ns, prefix, "events", "ConfigMap", true, true)
	secrets, local := limitMetric(ns, prefix, "secrets", "Secret", true, true), limitMetric(ns, prefix, "local", "Secret", true, false)
	heap := sampleHeap()
	url := runRemote(t, ns, events, secrets, local)

	c := waitMetricReason(t, ns, events.Name, v1alpha1.ReasonResponseTooLarge, 90*time.Second)
	for _, want := range []string{"RemoteClusterAccess " + ns + "/tenant", "--max-remote-response-bytes", "watch event"} {
		if c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, want) {
			t.Errorf("Ready=%s: %s; want False naming %q", c.Status, c.Message, want)
		}
	}
	neighboursServe(t, url, prefix, ns)
	waitFamilyWithin(t, 30*time.Second, url, prefix+"events")
	peak, after := heap.finish()

	watches := sent.all()
	t.Logf("watches answered with an event of 512 MiB: %d; bytes the server could send of each: %v", len(watches), watches)
	t.Logf("heap in use: peak %.1f MiB above the start, %.1f MiB above it after a collection at the end", mibOf(peak), mibOf(after))
	if len(watches) == 0 {
		t.Fatal("the hostile server was never asked for a watch")
	}
	for _, n := range watches {
		if n > 4*remotelimit.MaxWatchEventBytes {
			t.Errorf("the operator read %d bytes of the event, want about %d", n, remotelimit.MaxWatchEventBytes)
		}
	}
	if peak > 8*remotelimit.MaxWatchEventBytes || after > 32<<20 {
		t.Errorf("heap in use grew by %.1f MiB at its peak and %.1f MiB in the end; want under 128 MiB and 32 MiB", mibOf(peak), mibOf(after))
	}
}

// TestRemoteServerNeverAnswers: a tenant's remote API server accepts
// every request for the ConfigMaps of ns and never answers a watch, nor
// a LIST but with a byte every half second. The event-driven Metric of
// them reports ClusterUnreachable once its watch went unanswered for
// remotelimit.DefaultWatchHeaderTimeout, the polling one once its LIST
// took its poll's deadline (its 10 s interval; never more than
// remotelimit.DefaultRequestTimeout), and the server sees both
// requests given up; meanwhile the local cluster's metrics, polled and
// event-driven, serve and follow a change.
func TestRemoteServerNeverAnswers(t *testing.T) {
	testenv.Require(t, env)
	const ns = "remote-silent"
	type ended struct {
		watching bool
		after    time.Duration
	}
	var (
		mu  sync.Mutex
		log []ended
	)
	stop := make(chan struct{})
	hostileRemote(t, ns, func(w http.ResponseWriter, r *http.Request) bool {
		ok, watching := configMapsOf(r, ns)
		if !ok {
			return false
		}
		start := time.Now()
		if !watching {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"kind":"ConfigMapList","apiVersion":"v1","items":[`)
		}
		for done := false; !done; {
			select {
			case <-r.Context().Done():
				done = true
			case <-stop:
				return true
			case <-time.After(500 * time.Millisecond):
				if !watching {
					_, _ = io.WriteString(w, " ")
					w.(http.Flusher).Flush()
				}
			}
		}
		mu.Lock()
		log = append(log, ended{watching, time.Since(start)})
		mu.Unlock()
		return true
	})
	t.Cleanup(func() { close(stop) })
	const prefix = "remote_silent_"
	events, polled := limitMetric(ns, prefix, "events", "ConfigMap", true, true), limitMetric(ns, prefix, "polled", "ConfigMap", false, true)
	local, localPolled := limitMetric(ns, prefix, "local", "Secret", true, false), limitMetric(ns, prefix, "localpolled", "Secret", false, false)
	start := time.Now()
	url := runRemote(t, ns, events, polled, local, localPolled)

	waitFamilyWithin(t, 30*time.Second, url, prefix+"local", "{cluster=local,kind=Secret,version=v1} 1")
	waitFamilyWithin(t, 30*time.Second, url, prefix+"localpolled", "{cluster=local,kind=Secret,version=v1} 1")
	for _, c := range []struct {
		m      *v1alpha1.Metric
		says   string
		within time.Duration
	}{
		{events, "watching configmaps", remotelimit.DefaultWatchHeaderTimeout},
		{polled, clusterfault.Unreachable, remotelimit.DefaultRequestTimeout},
	} {
		testenv.Eventually(t, c.within+60*time.Second, func() error {
			m := &v1alpha1.Metric{}
			if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(c.m), m); err != nil {
				return err
			}
			if r := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady); r == nil ||
				r.Reason != v1alpha1.ReasonClusterUnreachable || !strings.Contains(r.Message, c.says) {
				return fmt.Errorf("%s: Ready %+v, want ClusterUnreachable saying %q", c.m.Name, r, c.says)
			}
			return nil
		})
		t.Logf("%s: ClusterUnreachable %s after the start", c.m.Name, time.Since(start).Round(time.Millisecond))
	}
	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "more", Namespace: ns}})
	waitFamilyWithin(t, 30*time.Second, url, prefix+"local", "{cluster=local,kind=Secret,version=v1} 2")
	waitFamilyWithin(t, 30*time.Second, url, prefix+"localpolled", "{cluster=local,kind=Secret,version=v1} 2")

	mu.Lock()
	got := append([]ended(nil), log...)
	mu.Unlock()
	var watchEnded, listEnded bool
	for _, e := range got {
		t.Logf("request ended by the operator (watch %t) after %s", e.watching, e.after.Round(time.Millisecond))
		want := remotelimit.DefaultRequestTimeout
		if e.watching {
			want, watchEnded = remotelimit.DefaultWatchHeaderTimeout, true
		} else {
			listEnded = true
		}
		if e.after > want+10*time.Second {
			t.Errorf("a request (watch %t) was held %s, want about %s", e.watching, e.after, want)
		}
	}
	if !watchEnded || !listEnded {
		t.Errorf("the operator gave up a watch: %t, a LIST: %t; want both", watchEnded, listEnded)
	}
}
