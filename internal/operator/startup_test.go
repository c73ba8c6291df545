package operator_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// startObjects is how many ConfigMaps the metrics of
// TestStartListsEachWatchOnce read: enough that the first LIST takes long
// enough for the reconcilers to register the other metrics while it runs.
const startObjects = 20000

// TestStartListsEachWatchOnce starts an operator whose event-driven
// metrics are all there before it starts: ten Metrics on one resource and
// namespace, eight reading metadata only and two full objects, so that
// whichever the reconciler sees first, the others register while that
// watch lists. The watch must list once (one LIST pass, which may be
// several pages) and fill every metric from it: no second LIST for
// metrics that joined late (metrics_operator_join_lists_total stays put),
// no restart from metadata to full objects, and every value right. Then
// it restarts the operator with a ServiceAccount for each metric, so that
// each waits for an access review of its own before it registers, and
// they register one after another: the same holds.
func TestStartListsEachWatchOnce(t *testing.T) {
	testenv.Require(t, env)
	operatorBinary(t) // a long test: skipped with -short
	tenant, objects := "startup-tenant", "startup-objects"
	for _, ns := range []string{tenant, objects} {
		mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	deleteMetricsAtEnd(t, tenant)
	start := time.Now()
	createConfigMaps(t, objects, startObjects)
	t.Cleanup(func() {
		// The control plane is shared with the package's other tests.
		_ = env.Client.DeleteAllOf(context.Background(), &corev1.ConfigMap{}, client.InNamespace(objects))
	})
	t.Logf("created %d ConfigMaps in %s", startObjects, time.Since(start).Round(time.Second))

	want := map[string]string{}
	for i := range 10 {
		name := fmt.Sprintf("startup_m%d", i)
		spec := v1alpha1.MetricSpec{Name: name, Target: configMaps, Namespace: objects, EventDriven: ptr.To(true),
			Interval: metav1.Duration{Duration: time.Hour}}
		label := fmt.Sprintf("p%d", i)
		switch {
		case i%5 == 2:
			// Reads a field outside metadata: the watch must carry full
			// objects.
			spec.Projections = []v1alpha1.Projection{{Name: label, FieldPath: "immutable", Default: jsonString("unset")}}
			want[name] = fmt.Sprintf("{cluster=local,kind=ConfigMap,%s=unset,version=v1} %d", label, startObjects)
		case i%2 == 0:
			spec.LabelSelector = "app=bulk"
			spec.Projections = []v1alpha1.Projection{{Name: label, FieldPath: "metadata.labels.app"}}
			want[name] = fmt.Sprintf("{cluster=local,kind=ConfigMap,%s=bulk,version=v1} %d", label, startObjects)
		default:
			spec.Projections = []v1alpha1.Projection{{Name: label, FieldPath: "metadata.namespace"}}
			want[name] = fmt.Sprintf("{cluster=local,kind=ConfigMap,%s=%s,version=v1} %d", label, objects, startObjects)
		}
		mustCreate(t, &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("m%d", i), Namespace: tenant}, Spec: spec})
	}

	// Once with the operator's own access; then, restarted, with a
	// ServiceAccount of its own for each metric, so that every metric
	// waits for its own access review before it can register, and the
	// reviews end one after another.
	startAndCheck(t, objects, want, operator.Options{Namespace: tenant})
	readers := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "startup-readers", Namespace: objects},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "startup-readers"}}
	for i := range 10 {
		sa := fmt.Sprintf("reader-%d", i)
		mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: tenant}})
		readers.Subjects = append(readers.Subjects, rbacv1.Subject{Kind: "ServiceAccount", Name: sa, Namespace: tenant})
		m := &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: fmt.Sprintf("m%d", i)}}
		testenv.Update(t, env.Client, m, func() { m.Spec.ServiceAccountName = sa })
	}
	mustCreate(t, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "startup-readers", Namespace: objects},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"list", "watch"}}}})
	mustCreate(t, readers)
	// Five reviews a second: 20 reviews (list and watch for each) take
	// four seconds, much longer than the LIST.
	startAndCheck(t, objects, want, operator.Options{Namespace: tenant, AccessReviewQPS: 5, AccessReviewBurst: 1})
}

// startAndCheck starts an operator with opts, waits until every family of
// want is right, checks that the ConfigMaps of namespace objects were
// listed once and that no metric needed a join LIST, and stops it.
func startAndCheck(t *testing.T, objects string, want map[string]string, opts operator.Options) {
	t.Helper()
	lists := &listPasses{path: "/api/v1/namespaces/" + objects + "/configmaps"}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(lists.wrap)
	joinsBefore := joinLists(t)
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr + "/metrics"
	opts.MetricsAddr, opts.MetricsSecure, opts.ProbeAddr, opts.AllowSeveralInProcess = addr, false, "0", true
	if err := opts.Complete(); err != nil {
		t.Fatal(err)
	}
	op, err := operator.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	started := time.Now()
	go func() { done <- op.Manager.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator stopped with %v", err)
		}
	}()

	testenv.Eventually(t, 180*time.Second, func() error {
		fams, err := scrape.Families(url)
		if err != nil {
			return err
		}
		for name, w := range want {
			if got := scrape.Strings(scrape.Samples(fams, name)); !slices.Equal(got, []string{w}) {
				return fmt.Errorf("%s = %v, want %s", name, got, w)
			}
		}
		return nil
	})
	t.Logf("every value right %s after the operator started; LIST passes %d (%d pages)",
		time.Since(started).Round(time.Millisecond), lists.passes(), lists.pages())
	if n := lists.passes(); n != 1 {
		t.Errorf("the watch of %s listed %d times (%d pages), want once", lists.path, n, lists.pages())
	}
	if n := joinLists(t) - joinsBefore; n != 0 {
		t.Errorf("metrics_operator_join_lists_total rose by %v, want 0", n)
	}
}

// listPasses counts the lists of one collection made through a
// rest.Config: a pass is a LIST without a continue token (its first
// page) or a list streamed as a watch's initial events; pages counts
// every LIST page.
type listPasses struct {
	path string

	mu           sync.Mutex
	first, total int
}

func (l *listPasses) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTrip(func(r *http.Request) (*http.Response, error) {
		q := r.URL.Query()
		watch := q.Get("watch") == "true" || q.Get("watch") == "1"
		if r.Method == http.MethodGet && r.URL.Path == l.path && watch && q.Get("sendInitialEvents") == "true" {
			l.mu.Lock()
			l.first++
			l.mu.Unlock()
		}
		if r.Method == http.MethodGet && r.URL.Path == l.path && !watch {
			l.mu.Lock()
			l.total++
			if q.Get("continue") == "" {
				l.first++
			}
			l.mu.Unlock()
		}
		return rt.RoundTrip(r)
	})
}

func (l *listPasses) passes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

func (l *listPasses) pages() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// joinLists reads metrics_operator_join_lists_total from the process's
// registry, which every operator of this test binary shares.
func joinLists(t *testing.T) float64 {
	t.Helper()
	fams, err := ctrlmetrics.Registry.Gather()
	if err != nil && !strings.Contains(err.Error(), "metrics_operator_join_lists_total") {
		// Other families' gather errors do not concern this counter.
		t.Logf("gathering: %v", err)
	}
	for _, f := range fams {
		if f.GetName() == "metrics_operator_join_lists_total" {
			sum := 0.0
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}
