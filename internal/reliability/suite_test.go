package reliability

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// operatorBin is the operator binary the tests run; empty with -short.
var operatorBin string

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	operatorBin, err = testenv.BuildOperator(dir)
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// startEnv starts a control plane of the test's own: the tests stop
// parts of it.
func startEnv(t *testing.T) *testenv.Env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a control plane and the operator binary; runs without -short")
	}
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	return env
}

// startAPIServer starts a second kube-apiserver on env's etcd, with
// flags added to its command line, for the operator to talk to: the test
// stops and starts it while it writes through env.Client. It returns the
// server and a kubeconfig reaching it as operatorUser.
func startAPIServer(t *testing.T, env *testenv.Env, dir string, flags map[string]string) (*testenv.APIServer, string) {
	t.Helper()
	api, err := env.StartAPIServer(dir, flags)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := api.WriteKubeconfig(env, dir, operatorUser)
	if err != nil {
		t.Fatal(err)
	}
	return api, kubeconfig
}

// startOperator runs the operator binary until the test ends.
func startOperator(t *testing.T, kubeconfig, dir, name, ns string, args ...string) *testenv.OperatorProcess {
	t.Helper()
	p, err := testenv.StartOperator(operatorBin, kubeconfig, dir, name, append([]string{"--operator-namespace", ns}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			if log, err := os.ReadFile(p.LogPath); err == nil {
				t.Logf("%s's log:\n%s", name, tail(log, 60))
			}
		}
	})
	return p
}

func tail(b []byte, lines int) []byte {
	n := 0
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			if n++; n > lines {
				return b[i+1:]
			}
		}
	}
	return b
}

// The metrics every test's operator computes, both event-driven on the
// same watch: the ConfigMaps of the fleet's namespace counted by their
// team label, and all of them. A relist must correct both.
const (
	family      = "reliability_configmaps"
	totalFamily = "reliability_configmaps_total"
)

// fleet is a namespace of ConfigMaps and the model of what they are: the
// values the metric must show.
type fleet struct {
	t    *testing.T
	c    client.Client
	ns   string
	mu   sync.Mutex
	team map[string]string // ConfigMap name → team label
	next int
}

// newFleet creates namespace ns with n ConfigMaps spread over four teams,
// and the event-driven Metrics counting them by team and in all.
func newFleet(t *testing.T, c client.Client, ns string, n int) *fleet {
	t.Helper()
	f := &fleet{t: t, c: c, ns: ns, team: map[string]string{}}
	if err := c.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	f.create(n)
	m := &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "by-team", Namespace: ns},
		Spec: v1alpha1.MetricSpec{
			Name:        family,
			Target:      v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Namespace:   ns,
			EventDriven: ptr.To(true),
			Interval:    metav1.Duration{Duration: time.Hour}, // nothing but events and lists can make it right
			Projections: []v1alpha1.Projection{{Name: "team", FieldPath: "metadata.labels.team"}},
		}}
	total := m.DeepCopy()
	total.Name, total.Spec.Name, total.Spec.Projections = "total", totalFamily, nil
	for _, m := range []*v1alpha1.Metric{m, total} {
		if err := c.Create(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// parallel runs fn for 0..n-1 on eight workers.
func parallel(n int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				if err := fn(i); err != nil {
					mu.Lock()
					first = firstErr(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	return first
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// create adds n ConfigMaps.
func (f *fleet) create(n int) {
	f.t.Helper()
	f.mu.Lock()
	start := f.next
	f.next += n
	f.mu.Unlock()
	err := parallel(n, func(i int) error {
		name, team := fmt.Sprintf("cm-%06d", start+i), fmt.Sprintf("team-%d", (start+i)%4)
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns, Labels: map[string]string{"team": team}}}
		if err := f.c.Create(f.t.Context(), cm); err != nil {
			return err
		}
		f.mu.Lock()
		f.team[name] = team
		f.mu.Unlock()
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// names returns up to n ConfigMap names, oldest first.
func (f *fleet) names(n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := make([]string, 0, len(f.team))
	for name := range f.team {
		names = append(names, name)
	}
	sort.Strings(names)
	return names[:min(n, len(names))]
}

// remove deletes n ConfigMaps (the oldest).
func (f *fleet) remove(n int) {
	f.t.Helper()
	names := f.names(n)
	err := parallel(len(names), func(i int) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: names[i], Namespace: f.ns}}
		if err := f.c.Delete(f.t.Context(), cm); err != nil {
			return err
		}
		f.mu.Lock()
		delete(f.team, names[i])
		f.mu.Unlock()
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// relabel moves n ConfigMaps (the oldest) to team "moved".
func (f *fleet) relabel(n int) {
	f.t.Helper()
	names := f.names(n)
	err := parallel(len(names), func(i int) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: names[i], Namespace: f.ns}}
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"team":"moved"}}}`))
		if err := f.c.Patch(f.t.Context(), cm, patch); err != nil {
			return err
		}
		f.mu.Lock()
		f.team[names[i]] = "moved"
		f.mu.Unlock()
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// churn makes a change of every kind: n ConfigMaps created, n deleted, n
// moved to another team.
func (f *fleet) churn(n int) {
	f.t.Helper()
	f.remove(n)
	f.relabel(n)
	f.create(n)
}

// want renders the samples the metrics must show, by family.
func (f *fleet) want() map[string][]string {
	f.mu.Lock()
	counts := map[string]int{}
	for _, team := range f.team {
		counts[team]++
	}
	all := len(f.team)
	f.mu.Unlock()
	byTeam := make([]string, 0, len(counts))
	for team, n := range counts {
		byTeam = append(byTeam, fmt.Sprintf("{cluster=local,kind=ConfigMap,team=%s,version=v1} %d", team, n))
	}
	slices.Sort(byTeam)
	return map[string][]string{
		family:      byTeam,
		totalFamily: {fmt.Sprintf("{cluster=local,kind=ConfigMap,version=v1} %d", all)},
	}
}

// waitRight polls the operator's /metrics until both metrics show the
// fleet's values and returns how long after since that was; it fails the
// test after timeout.
func (f *fleet) waitRight(url string, since time.Time, timeout time.Duration) time.Duration {
	f.t.Helper()
	want := f.want()
	for {
		err := check(url, want)
		if err == nil {
			return time.Since(since)
		}
		if time.Since(since) > timeout {
			f.t.Fatalf("values not right within %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// check scrapes url once and compares the families in want.
func check(url string, want map[string][]string) error {
	fams, err := scrape.Families(url)
	if err != nil {
		return err
	}
	for name, w := range want {
		if got := scrape.Strings(scrape.Samples(fams, name)); !slices.Equal(got, w) {
			return fmt.Errorf("%s = %v, want %v", name, got, w)
		}
	}
	return nil
}

// counter reads a counter or gauge of the operator's own metrics.
func counter(t *testing.T, url, name string) float64 {
	t.Helper()
	fams, err := scrape.Families(url)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, s := range scrape.Samples(fams, name) {
		sum += s.Value
	}
	return sum
}
