package operator_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// tenantAccesses creates, in ns (created here), a kubeconfig Secret
// reaching kubeconfig and one RemoteClusterAccess per name, all to that
// one server: a tenant pointing many accesses at an API server it runs.
func tenantAccesses(t *testing.T, ns string, kubeconfig []byte, names ...string) {
	t.Helper()
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "kubeconfig", Namespace: ns},
		Data: map[string][]byte{"kubeconfig": kubeconfig}})
	for _, name := range names {
		mustCreate(t, &v1alpha1.RemoteClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.RemoteClusterAccessSpec{KubeConfigSecretRef: &v1alpha1.KubeConfigSecretReference{Name: "kubeconfig"}}})
	}
}

// remoteCount is an event-driven Metric prefix+access counting the
// ConfigMaps of ns in the cluster of the RemoteClusterAccess access (the
// local cluster for "").
func remoteCount(ns, prefix, access string) *v1alpha1.Metric {
	name := cmp.Or(access, "local")
	m := &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.MetricSpec{Name: prefix + name, Namespace: ns, EventDriven: ptr.To(true),
			Target:   v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Interval: metav1.Duration{Duration: 10 * time.Second}}}
	if access != "" {
		m.Spec.RemoteClusterAccessRef = &v1alpha1.NamespacedReference{Name: access}
	}
	return m
}

// readyReasons returns each metric's Ready reason ("" before it has one).
func readyReasons(t *testing.T, ms ...*v1alpha1.Metric) map[string]metav1.Condition {
	t.Helper()
	got := map[string]metav1.Condition{}
	for _, m := range ms {
		cur := &v1alpha1.Metric{}
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(m), cur); err != nil {
			t.Fatal(err)
		}
		if c := meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ConditionReady); c != nil {
			got[m.Name] = *c
		}
	}
	return got
}

// waitSplit waits until `ready` of ms are Ready and the others report
// TenantLimitExceeded, and returns the refused ones with their messages.
func waitSplit(t *testing.T, ready int, ms ...*v1alpha1.Metric) (refused map[string]string) {
	t.Helper()
	testenv.Eventually(t, 90*time.Second, func() error {
		conds := readyReasons(t, ms...)
		refused = map[string]string{}
		n := 0
		for _, m := range ms {
			switch c := conds[m.Name]; c.Reason {
			case v1alpha1.ReasonReady:
				n++
			case v1alpha1.ReasonTenantLimitExceeded:
				refused[m.Name] = c.Message
			}
		}
		if n != ready || n+len(refused) != len(ms) {
			return fmt.Errorf("conditions %v: want %d Ready and the rest TenantLimitExceeded", conds, ready)
		}
		return nil
	})
	return refused
}

// TestRemoteWatchesPerNamespace runs the operator with
// --max-remote-watches-per-namespace 2. A tenant namespace points three
// RemoteClusterAccesses at one API server and counts its ConfigMaps
// through each (three remote watches): two metrics serve, the third
// reports TenantLimitExceeded naming the flag and the namespace and
// exports nothing, while a neighbour namespace's remote metric and the
// tenant's own metric of the local cluster (whose watches count toward no
// namespace) serve. Once the tenant deletes one of its serving metrics,
// the refused one starts by itself and serves; a fourth metric is refused
// in turn, and starts once the tenant deletes the access of a serving one.
func TestRemoteWatchesPerNamespace(t *testing.T) {
	testenv.Require(t, env)
	const ns, neighbour, prefix = "tenant-watches", "tenant-watches-next", "tenant_watches_"
	tenantAccesses(t, ns, remoteProxy(t, nil), "a", "b", "c", "d")
	tenantAccesses(t, neighbour, remoteProxy(t, nil), "n")
	createConfigMaps(t, ns, 5)
	createConfigMaps(t, neighbour, 3)
	tenant := []*v1alpha1.Metric{remoteCount(ns, prefix, "a"), remoteCount(ns, prefix, "b"), remoteCount(ns, prefix, "c")}
	local, next := remoteCount(ns, prefix, ""), remoteCount(neighbour, prefix+"next_", "n")
	url := runMetrics(t, operator.Options{Namespace: ns, MaxRemoteWatchesPerNamespace: 2},
		append([]*v1alpha1.Metric{local, next}, tenant...)...)

	refused := waitSplit(t, 2, tenant...)
	var out string
	for name, msg := range refused {
		out = name
		for _, want := range []string{"--max-remote-watches-per-namespace", "namespace " + ns, "configmaps in namespace " + ns, "cluster " + ns + "/" + name} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: the message does not name %q: %s", name, want, msg)
			}
		}
	}
	waitFamilyWithin(t, 30*time.Second, url, prefix+"next_n", "{cluster=n,kind=ConfigMap,version=v1} 3")
	waitFamilyWithin(t, 30*time.Second, url, prefix+"local", "{cluster=local,kind=ConfigMap,version=v1} 5")
	for _, m := range tenant {
		if m.Name == out {
			waitFamilyWithin(t, 10*time.Second, url, prefix+m.Name)
		} else {
			waitFamilyWithin(t, 30*time.Second, url, prefix+m.Name, fmt.Sprintf("{cluster=%s,kind=ConfigMap,version=v1} 5", m.Name))
		}
	}

	var gone *v1alpha1.Metric
	for _, m := range tenant {
		if m.Name != out {
			gone = m
			break
		}
	}
	if err := env.Client.Delete(t.Context(), gone); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFamilyWithin(t, 60*time.Second, url, prefix+out, fmt.Sprintf("{cluster=%s,kind=ConfigMap,version=v1} 5", out))
	waitMetricReason(t, ns, out, v1alpha1.ReasonReady, 30*time.Second)
	t.Logf("metric %s refused while %s ran, serving %s after %s was deleted", out, gone.Name, time.Since(start).Round(time.Millisecond), gone.Name)

	fourth := remoteCount(ns, prefix, "d")
	mustCreate(t, fourth)
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), fourth) })
	c := waitMetricReason(t, ns, "d", v1alpha1.ReasonTenantLimitExceeded, 60*time.Second)
	if !strings.Contains(c.Message, "--max-remote-watches-per-namespace") {
		t.Errorf("d: the message does not name the flag: %s", c.Message)
	}
	var access string // of a metric serving now
	for _, m := range tenant {
		if m.Name != gone.Name {
			access = m.Name
			break
		}
	}
	if err := env.Client.Delete(t.Context(), &v1alpha1.RemoteClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: access, Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	waitFamilyWithin(t, 60*time.Second, url, prefix+"d", "{cluster=d,kind=ConfigMap,version=v1} 5")
	t.Logf("metric d serving %s after RemoteClusterAccess %s was deleted", time.Since(start).Round(time.Millisecond), access)
	waitFamilyWithin(t, 30*time.Second, url, prefix+"next_n", "{cluster=n,kind=ConfigMap,version=v1} 3")
}

// TestRemoteObjectsPerNamespace runs the operator with
// --max-remote-objects-per-namespace 100. A tenant namespace with 60
// ConfigMaps counts them through two RemoteClusterAccesses of one API
// server (two remote watches, 120 objects together): one metric serves
// and follows a new ConfigMap, the other reports TenantLimitExceeded
// naming the flag and exports nothing, while a neighbour namespace's
// remote metric of 60 objects, and the tenant's metric of the local
// cluster, serve. Once the tenant deletes the serving metric, the other
// comes back by itself with the right value.
func TestRemoteObjectsPerNamespace(t *testing.T) {
	testenv.Require(t, env)
	const ns, neighbour, prefix = "tenant-objects", "tenant-objects-next", "tenant_objects_"
	tenantAccesses(t, ns, remoteProxy(t, nil), "a", "b")
	tenantAccesses(t, neighbour, remoteProxy(t, nil), "n")
	createConfigMaps(t, ns, 60)
	createConfigMaps(t, neighbour, 60)
	tenant := []*v1alpha1.Metric{remoteCount(ns, prefix, "a"), remoteCount(ns, prefix, "b")}
	local, next := remoteCount(ns, prefix, ""), remoteCount(neighbour, prefix+"next_", "n")
	url := runMetrics(t, operator.Options{Namespace: ns, MaxRemoteObjectsPerNamespace: 100, ObjectLimitRetry: 2 * time.Second},
		append([]*v1alpha1.Metric{local, next}, tenant...)...)

	refused := waitSplit(t, 1, tenant...)
	var out string
	for name, msg := range refused {
		out = name
		for _, want := range []string{"--max-remote-objects-per-namespace", "100 objects", "namespace " + ns, "cluster " + ns + "/" + name} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: the message does not name %q: %s", name, want, msg)
			}
		}
	}
	in := "a"
	if out == "a" {
		in = "b"
	}
	waitFamilyWithin(t, 30*time.Second, url, prefix+"next_n", "{cluster=n,kind=ConfigMap,version=v1} 60")
	waitFamilyWithin(t, 30*time.Second, url, prefix+"local", "{cluster=local,kind=ConfigMap,version=v1} 60")
	waitFamilyWithin(t, 30*time.Second, url, prefix+in, fmt.Sprintf("{cluster=%s,kind=ConfigMap,version=v1} 60", in))
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "one-more", Namespace: ns}})
	waitFamilyWithin(t, 30*time.Second, url, prefix+in, fmt.Sprintf("{cluster=%s,kind=ConfigMap,version=v1} 61", in))
	// Tried again every 2 s meanwhile, the refused watch stays refused.
	time.Sleep(5 * time.Second)
	waitFamilyWithin(t, 10*time.Second, url, prefix+out)
	if c := readyReasons(t, tenant...)[out]; c.Reason != v1alpha1.ReasonTenantLimitExceeded {
		t.Errorf("%s: Ready %+v after its retries, want TenantLimitExceeded", out, c)
	}

	for _, m := range tenant {
		if m.Name == in {
			if err := env.Client.Delete(t.Context(), m); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := time.Now()
	waitFamilyWithin(t, 60*time.Second, url, prefix+out, fmt.Sprintf("{cluster=%s,kind=ConfigMap,version=v1} 61", out))
	waitMetricReason(t, ns, out, v1alpha1.ReasonReady, 30*time.Second)
	t.Logf("metric %s back %s after %s was deleted", out, time.Since(start).Round(time.Millisecond), in)
}

// floodRemote is an API server a hostile tenant runs: every LIST of the
// ConfigMaps of ns is answered, page by page, with n objects of its own,
// each carrying an annotation of 2 KiB and a UID of uidBytes (36 for a
// real one); a watch is the test control plane's from the list's
// resource version rv. It returns the kubeconfig reaching it.
func floodRemote(t *testing.T, ns, rv string, n, uidBytes int) []byte {
	t.Helper()
	annotation := strings.Repeat("a", 2048)
	return remoteProxy(t, func(w http.ResponseWriter, r *http.Request) bool {
		if ok, watching := configMapsOf(r, ns); !ok || watching {
			return false
		}
		q := r.URL.Query()
		from, _ := strconv.Atoi(strings.TrimPrefix(q.Get("continue"), "flood-"))
		limit, _ := strconv.Atoi(q.Get("limit"))
		if limit <= 0 {
			limit = n
		}
		to := min(from+limit, n)
		kind, apiVersion := "ConfigMapList", "v1"
		if strings.Contains(r.Header.Get("Accept"), "as=PartialObjectMetadataList") {
			kind, apiVersion = "PartialObjectMetadataList", "meta.k8s.io/v1"
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, `{"kind":%q,"apiVersion":%q,"metadata":{"resourceVersion":%q`, kind, apiVersion, rv)
		if to < n {
			fmt.Fprintf(&b, `,"continue":"flood-%d"`, to)
		}
		b.WriteString(`},"items":[`)
		for i := from; i < to; i++ {
			if i > from {
				b.WriteByte(',')
			}
			uid := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
			uid += strings.Repeat("u", max(0, uidBytes-len(uid)))
			fmt.Fprintf(&b, `{"metadata":{"name":"flood-%d","namespace":%q,"uid":%q,"resourceVersion":%q,"annotations":{"a":%q}}}`,
				i, ns, uid, rv, annotation)
		}
		b.WriteString("]}")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b.Bytes())
		return true
	})
}

// TestTenantRemoteWatchesMemory measures the operator's heap against the
// number of one tenant's remote watches: a hostile API server serves
// 25,000 ConfigMaps of its own (floodRemote) to each of up to four
// RemoteClusterAccesses of one namespace, each read by an event-driven
// Metric counting them. Without the per-namespace limits the heap the
// operator keeps grows with the watches; with
// --max-remote-objects-per-namespace 50,000 two of the four watches serve,
// the others report TenantLimitExceeded, and the heap stays at about what
// two watches keep. A last run with UIDs of 8 KiB checks that what a watch
// keeps per object does not grow with the size of the object.
func TestTenantRemoteWatchesMemory(t *testing.T) {
	testenv.Require(t, env)
	if testing.Short() {
		t.Skip("lists 25,000 objects per watch")
	}
	const objects = 25000
	type result struct {
		name     string
		serving  int
		retained int64
		peak     int64
	}
	var results []result
	measure := func(t *testing.T, name string, watches, uidBytes int, opts operator.Options) result {
		ns := "tenant-flood-" + name
		mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		list := &corev1.ConfigMapList{}
		if err := env.Client.List(t.Context(), list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		prefix := "tenant_flood_" + strings.ReplaceAll(name, "-", "_") + "_"
		var ms []*v1alpha1.Metric
		var names []string
		for i := range watches {
			names = append(names, fmt.Sprint("acc", i))
		}
		kubeconfig := floodRemote(t, ns, list.ResourceVersion, objects, uidBytes)
		mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "kubeconfig", Namespace: ns},
			Data: map[string][]byte{"kubeconfig": kubeconfig}})
		for _, n := range names {
			mustCreate(t, &v1alpha1.RemoteClusterAccess{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: ns},
				Spec: v1alpha1.RemoteClusterAccessSpec{KubeConfigSecretRef: &v1alpha1.KubeConfigSecretReference{Name: "kubeconfig"}}})
			ms = append(ms, remoteCount(ns, prefix, n))
		}
		heap := sampleHeap()
		opts.Namespace = ns
		url := runMetrics(t, opts, ms...)
		serving := 0
		testenv.Eventually(t, 180*time.Second, func() error {
			serving = 0
			settled := 0
			for name, c := range readyReasons(t, ms...) {
				switch c.Reason {
				case v1alpha1.ReasonReady:
					serving++
					settled++
				case v1alpha1.ReasonTenantLimitExceeded:
					settled++
				default:
					return fmt.Errorf("%s: %s", name, c.Reason)
				}
			}
			if settled != len(ms) {
				return fmt.Errorf("%d of %d metrics settled", settled, len(ms))
			}
			return nil
		})
		for _, m := range ms {
			if c := readyReasons(t, m)[m.Name]; c.Reason == v1alpha1.ReasonReady {
				waitFamilyWithin(t, 60*time.Second, url, m.Spec.Name, fmt.Sprintf("{cluster=%s,kind=ConfigMap,version=v1} %d", m.Name, objects))
			}
		}
		peak, after := heap.finish()
		r := result{name: name, serving: serving, retained: after, peak: peak}
		t.Logf("%s: %d of %d remote watches serving %d objects each: heap %.1f MiB above the start after a collection (%.0f B an object held), peak %.1f MiB",
			name, serving, watches, objects, mibOf(after), float64(after)/float64(max(1, serving*objects)), mibOf(peak))
		results = append(results, r)
		return r
	}
	off := operator.Options{MaxRemoteWatchesPerNamespace: -1, MaxRemoteObjectsPerNamespace: -1}
	var one, two, four, capped, long result
	t.Run("limits off, 1 watch", func(t *testing.T) { one = measure(t, "off-1", 1, 36, off) })
	t.Run("limits off, 2 watches", func(t *testing.T) { two = measure(t, "off-2", 2, 36, off) })
	t.Run("limits off, 4 watches", func(t *testing.T) { four = measure(t, "off-4", 4, 36, off) })
	t.Run("50,000 objects per namespace, 4 watches", func(t *testing.T) {
		capped = measure(t, "capped-4", 4, 36, operator.Options{MaxRemoteObjectsPerNamespace: 2 * objects})
	})
	t.Run("UIDs of 8 KiB, 1 watch", func(t *testing.T) { long = measure(t, "long-uid", 1, 8192, off) })
	for _, r := range results {
		t.Logf("%-10s serving %d: retained %6.1f MiB, peak %6.1f MiB", r.name, r.serving, mibOf(r.retained), mibOf(r.peak))
	}
	if t.Failed() {
		return
	}
	perWatch := (four.retained - one.retained) / 3
	t.Logf("without limits each remote watch of %d objects adds %.1f MiB of heap (%.0f B an object)",
		objects, mibOf(perWatch), float64(perWatch)/objects)
	if capped.serving != 2 {
		t.Errorf("with the per-namespace limit %d of 4 watches serve, want 2", capped.serving)
	}
	// Two watches' objects, and slack for the connections of the two
	// accesses whose watches are stopped.
	if capped.retained > two.retained+perWatch {
		t.Errorf("with the per-namespace limit 4 watches keep %.1f MiB, want about what 2 keep (%.1f MiB) and under %.1f MiB",
			mibOf(capped.retained), mibOf(two.retained), mibOf(two.retained+perWatch))
	}
	// 25,000 UIDs of 8 KiB are 200 MiB if kept.
	if long.retained > one.retained+(8<<20) {
		t.Errorf("a watch of objects with UIDs of 8 KiB keeps %.1f MiB, one of real UIDs %.1f MiB: what is kept per object grows with its UID",
			mibOf(long.retained), mibOf(one.retained))
	}
}
