package access_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/access"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	testenv.Main(m, &env)
}

const reviews = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

// TestCheckerCachesPerScopeAndNoticesGrants asks the real authorizer: ten
// metrics of one namespace reading one resource cost one review between
// them, a RoleBinding created afterwards is noticed at the next re-check,
// which enqueues every metric depending on it, and a scope no metric asks
// for any more is no longer reviewed.
func TestCheckerCachesPerScopeAndNoticesGrants(t *testing.T) {
	testenv.Require(t, env)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tenant, target := "access-a", "access-b"
	for _, ns := range []string{tenant, target} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	requests := testenv.NewRequestCounter()
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(requests.Wrap)
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const period = 500 * time.Millisecond
	checker := access.New(access.Options{Client: c, DefaultServiceAccount: "metrics", RecheckPeriod: period})
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer queue.ShutDown()
	if err := checker.Source("Metric").Start(ctx, queue); err != nil {
		t.Fatal(err)
	}

	request := func(i int) access.Request {
		return access.Request{Kind: "Metric", Metric: types.NamespacedName{Namespace: tenant, Name: fmt.Sprint("m", i)},
			Resource: schema.GroupResource{Resource: "configmaps"}, Namespace: target}
	}
	// Asked before the Checker runs, every metric's access is pending; the
	// first review of their one scope sends all ten back.
	for i := range 10 {
		if err := checker.Authorize(ctx, request(i)); !errors.Is(err, access.ErrPending) {
			t.Fatalf("metric %d: %v, want ErrPending", i, err)
		}
	}
	go func() { _ = checker.Start(ctx) }()
	drain := func(want int) {
		enqueued := map[string]bool{}
		testenv.Eventually(t, 30*time.Second, func() error {
			for queue.Len() > 0 {
				item, _ := queue.Get()
				enqueued[item.Name] = true
				queue.Done(item)
			}
			if len(enqueued) != want {
				return fmt.Errorf("enqueued %v, want %d metrics", enqueued, want)
			}
			return nil
		})
	}
	drain(10)
	for i := range 10 {
		err := checker.Authorize(ctx, request(i))
		if reason.Of(err, "") != v1alpha1.ReasonForbidden {
			t.Fatalf("metric %d: %v, want Forbidden", i, err)
		}
		if i == 0 {
			t.Logf("denied: %v", err)
			for _, want := range []string{"system:serviceaccount:access-a:metrics", "list", "configmaps", `"access-b"`} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q does not name %s", err, want)
				}
			}
		}
	}
	if n := requests.Count("POST", reviews); n != 1 {
		t.Fatalf("%d reviews for ten metrics of one scope, want 1 (denied at list)", n)
	}
	// Without a ServiceAccount (none named, no default) no review is made.
	open := access.New(access.Options{Client: c})
	if err := open.Authorize(ctx, request(0)); err != nil {
		t.Fatalf("without a ServiceAccount: %v", err)
	}
	if n := requests.Count("POST", reviews); n != 1 {
		t.Fatalf("%d reviews, want still 1", n)
	}

	for _, obj := range []client.Object{
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: target},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"list", "watch"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: target},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "reader"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "metrics", Namespace: tenant}}},
	} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	drain(10)
	for i := range 10 {
		if err := checker.Authorize(ctx, request(i)); err != nil {
			t.Fatalf("metric %d after the grant: %v", i, err)
		}
	}

	for i := range 10 {
		checker.Forget("Metric", request(i).Metric)
	}
	time.Sleep(2 * period) // the next re-check drops the scope
	before := requests.Count("POST", reviews)
	time.Sleep(3 * period)
	if after := requests.Count("POST", reviews); after != before {
		t.Fatalf("%d reviews after every metric was forgotten, want none", after-before)
	}
}

// TestReviewsTakeTurnsPerTenant floods the Checker with the scopes of one
// tenant whose metrics each name another ServiceAccount, then asks for one
// metric of a second tenant. Reviews are limited to 5 per second, as a
// real --access-review-qps would limit them; the second tenant's metric is
// decided within the first few reviews rather than after the flood, and
// no reconciler waited: every Authorize returned at once.
func TestReviewsTakeTurnsPerTenant(t *testing.T) {
	testenv.Require(t, env)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 5, 1
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	checker := access.New(access.Options{Client: c, RecheckPeriod: time.Hour})
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer queue.ShutDown()
	if err := checker.Source("Metric").Start(ctx, queue); err != nil {
		t.Fatal(err)
	}
	ask := func(ns, name, sa string) error {
		return checker.Authorize(ctx, access.Request{Kind: "Metric", Metric: types.NamespacedName{Namespace: ns, Name: name},
			ServiceAccountName: sa, Resource: schema.GroupResource{Resource: "secrets"}, Namespace: "kube-system"})
	}
	const flood = 30
	start := time.Now()
	for i := range flood {
		if err := ask("turns-hostile", fmt.Sprint("m", i), fmt.Sprint("sa", i)); !errors.Is(err, access.ErrPending) {
			t.Fatalf("hostile metric %d: %v, want ErrPending", i, err)
		}
	}
	if err := ask("turns-victim", "m", "reader"); !errors.Is(err, access.ErrPending) {
		t.Fatalf("victim metric: %v, want ErrPending", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("%d Authorize calls took %s: they must not wait for reviews", flood+1, d)
	}
	go func() { _ = checker.Start(ctx) }()

	var order []string
	testenv.Eventually(t, 60*time.Second, func() error {
		for queue.Len() > 0 {
			item, _ := queue.Get()
			order = append(order, item.Namespace)
			queue.Done(item)
		}
		if len(order) != flood+1 {
			return fmt.Errorf("%d of %d metrics decided", len(order), flood+1)
		}
		return nil
	})
	victim := slices.Index(order, "turns-victim")
	t.Logf("decided %d metrics in %s; the victim's came %d", len(order), time.Since(start).Round(time.Millisecond), victim+1)
	// Two reviewers take turns: at most two hostile reviews go first.
	if victim < 0 || victim > 2 {
		t.Fatalf("the second tenant's metric was decided at position %d of %d, want among the first 3", victim+1, len(order))
	}
	if err := ask("turns-victim", "m", "reader"); reason.Of(err, "") != v1alpha1.ReasonForbidden {
		t.Fatalf("victim after its review: %v, want Forbidden", err)
	}
}

// TestCheckerRechecksEveryPart authorizes one metric that reads two
// resources (as a ManagedMetric reads several kinds): a grant of the first
// one it asked about is noticed at the re-check, a part it forgets is no
// longer reviewed, and a forgotten metric not at all.
func TestCheckerRechecksEveryPart(t *testing.T) {
	testenv.Require(t, env)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tenant := "access-parts"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenant}}); err != nil {
		t.Fatal(err)
	}
	requests := testenv.NewRequestCounter()
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(requests.Wrap)
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const period = 500 * time.Millisecond
	checker := access.New(access.Options{Client: c, DefaultServiceAccount: "metrics", RecheckPeriod: period})
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer queue.ShutDown()
	if err := checker.Source("ManagedMetric").Start(ctx, queue); err != nil {
		t.Fatal(err)
	}
	go func() { _ = checker.Start(ctx) }()
	metric := types.NamespacedName{Namespace: tenant, Name: "mm"}
	part := func(group, resource string) access.Request {
		return access.Request{Kind: "ManagedMetric", Metric: metric, Part: group + "/" + resource,
			Resource: schema.GroupResource{Group: group, Resource: resource}}
	}
	widgets, gadgets := part("a.parts.test", "widgets"), part("b.parts.test", "gadgets")
	drain := func() {
		for queue.Len() > 0 {
			item, _ := queue.Get()
			queue.Done(item)
			queue.Forget(item)
		}
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		for _, r := range []access.Request{widgets, gadgets} {
			if err := checker.Authorize(ctx, r); reason.Of(err, "") != v1alpha1.ReasonForbidden {
				return fmt.Errorf("%s: %w, want Forbidden", r.Part, err)
			}
		}
		return nil
	})
	drain()
	grant := func(name, group, resource string) {
		for _, obj := range []client.Object{
			&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{group}, Resources: []string{resource}, Verbs: []string{"list", "watch"}}}},
			&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
				RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "metrics", Namespace: tenant}}},
		} {
			if err := env.Client.Create(ctx, obj); err != nil {
				t.Fatal(err)
			}
		}
	}
	grant("access-parts-widgets", "a.parts.test", "widgets")
	testenv.Eventually(t, 30*time.Second, func() error {
		if queue.Len() == 0 {
			return fmt.Errorf("the grant of the first part did not enqueue the metric")
		}
		return nil
	})
	if err := checker.Authorize(ctx, widgets); err != nil {
		t.Fatalf("widgets after the grant: %v", err)
	}
	if err := checker.Authorize(ctx, gadgets); reason.Of(err, "") != v1alpha1.ReasonForbidden {
		t.Fatalf("gadgets: %v, want still Forbidden", err)
	}

	// A forgotten part is not reviewed any more: granting it now flips
	// nothing the checker tracks, so the metric is not enqueued.
	drain()
	checker.ForgetParts("ManagedMetric", metric, func(p string) bool { return p == gadgets.Part })
	time.Sleep(2 * period) // the next re-check drops the gadgets decision
	grant("access-parts-gadgets", "b.parts.test", "gadgets")
	time.Sleep(4 * period)
	if queue.Len() != 0 {
		t.Fatalf("a grant of a forgotten part enqueued the metric")
	}

	checker.Forget("ManagedMetric", metric)
	time.Sleep(2 * period)
	before := requests.Count("POST", reviews)
	time.Sleep(3 * period)
	if n := requests.Count("POST", reviews) - before; n != 0 {
		t.Fatalf("%d reviews after the metric was forgotten, want none", n)
	}
}
