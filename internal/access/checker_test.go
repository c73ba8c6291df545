package access_test

import (
	"context"
	"fmt"
	"os"
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

	go func() { _ = checker.Start(ctx) }()
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
	enqueued := map[string]bool{}
	testenv.Eventually(t, 30*time.Second, func() error {
		for queue.Len() > 0 {
			item, _ := queue.Get()
			enqueued[item.Name] = true
			queue.Done(item)
		}
		if len(enqueued) != 10 {
			return fmt.Errorf("enqueued %v, want all ten metrics", enqueued)
		}
		return nil
	})
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
