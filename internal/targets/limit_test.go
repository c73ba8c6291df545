package targets_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/targets"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	testenv.Main(m, &env)
}

// rewriteLimit stands for an API server that answers LISTs with pages of
// its own size: limit (0: every object in one page, whatever was asked).
func rewriteLimit(limit int) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			q := r.URL.Query()
			if r.Method != http.MethodGet || q.Get("watch") == "true" || !q.Has("limit") {
				return rt.RoundTrip(r)
			}
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			} else {
				q.Del("limit")
			}
			r = r.Clone(r.Context())
			r.URL.RawQuery = q.Encode()
			return rt.RoundTrip(r)
		})
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestListObjectLimit lists 60 ConfigMaps with WithMaxObjects(50): from
// a server paging by 10 (the limit is over on the sum of pages) and from
// one that ignores limit and sends all 60 in one page, the list fails
// with ObjectLimitExceeded naming the flag, the resource and the
// cluster, and returns no object. At 60 allowed, or 40 objects, it
// returns them all.
func TestListObjectLimit(t *testing.T) {
	testenv.Require(t, env)
	const ns = "list-limit"
	if err := env.Client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		if err := env.Client.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("cm-", i), Namespace: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(t *testing.T, page, limit int) ([]map[string]any, error) {
		cfg := rest.CopyConfig(env.Config)
		cfg.Wrap(rewriteLimit(page))
		dyn, err := dynamic.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		l := targets.NewLister(env.Client.RESTMapper(), dyn, targets.WithMaxObjects(limit, "tenant"))
		m, err := l.Mapping(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"})
		if err != nil {
			t.Fatal(err)
		}
		return l.List(t.Context(), m, ns, "")
	}
	for _, tc := range []struct {
		name        string
		page, limit int
		want        int // objects; -1: ObjectLimitExceeded
	}{
		{name: "pages of 10 over the limit", page: 10, limit: 50, want: -1},
		{name: "one page over the limit", page: 0, limit: 50, want: -1},
		{name: "pages of 10 at the limit", page: 10, limit: 60, want: 60},
		{name: "one page at the limit", page: 0, limit: 60, want: 60},
		{name: "no limit", page: 0, limit: -1, want: 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := list(t, tc.page, tc.limit)
			if tc.want >= 0 {
				if err != nil || len(objs) != tc.want {
					t.Fatalf("%d objects, error %v; want %d", len(objs), err, tc.want)
				}
				return
			}
			if reason.Of(err, "") != v1alpha1.ReasonObjectLimitExceeded || objs != nil {
				t.Fatalf("%d objects, error %v; want none and ObjectLimitExceeded", len(objs), err)
			}
			for _, want := range []string{"50", "--max-objects-per-watch", "configmaps in namespace " + ns, "cluster tenant"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the message does not name %q: %s", want, err)
				}
			}
		})
	}
}
