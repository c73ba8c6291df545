package informers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/informers"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/remotelimit"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// waitReason waits until the probe's watch failed it with reason and it
// holds nothing, and returns that error's message.
func (p *limitProbe) waitReason(t *testing.T, want string) (message string) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, func() error {
		_, err := p.state()
		if reason.Of(err, "") != want {
			return fmt.Errorf("%s: error %w, want %s", p.sub.ID, err, want)
		}
		if n := p.sub.Aggregate.Len(); n != 0 {
			return fmt.Errorf("%s holds %d objects, want none", p.sub.ID, n)
		}
		message = err.Error()
		return nil
	})
	return message
}

// TestResponseTooLargeStopsTheWatch watches ten ConfigMaps of 1 KiB
// through a transport bounding responses to 25,000 bytes, as a remote
// cluster's is: the watch serves them; one ConfigMap grown to 50 KiB
// makes a watch event over the bound, and the watch fails its metric
// with ResponseTooLarge and holds nothing; it is listed again once per
// RetryAfterObjectLimit, not in a loop, and each list, now a page over
// the bound, fails it again; once the ConfigMap is small again the watch
// comes back by itself with the ten objects.
func TestResponseTooLargeStopsTheWatch(t *testing.T) {
	testenv.Require(t, env)
	const ns, retry = "response-limit", 3 * time.Second
	createConfigMaps(t, ns, 0)
	for i := range 10 {
		if err := env.Client.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("cm-", i), Namespace: ns},
			Data: map[string]string{"k": strings.Repeat("x", 1024)}}); err != nil {
			t.Fatal(err)
		}
	}
	requests := testenv.NewRequestCounter()
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(refuseStreamedLists)
	cfg.Wrap(requests.Wrap)
	cfg.Wrap(remotelimit.Wrap(remotelimit.Limits{MaxResponseBytes: 25000, Source: "the RemoteClusterAccess test/tenant"}))
	dyn, md := clientsFor(t, cfg)
	reg := registry.New()
	m := newManager(t, reg, &informers.Clients{Dynamic: dyn, Metadata: md, ReportUnreachable: true},
		informers.Options{RetryAfterObjectLimit: retry})
	startManager(t, m)
	p := newLimitProbe(t, reg, m, "grows", ns, false)
	p.waitHolds(t, m, 10)

	resize := func(n int) {
		t.Helper()
		cm := &corev1.ConfigMap{}
		if err := env.Client.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "cm-0"}, cm); err != nil {
			t.Fatal(err)
		}
		cm.Data["k"] = strings.Repeat("x", n)
		if err := env.Client.Update(t.Context(), cm); err != nil {
			t.Fatal(err)
		}
	}
	resize(50 << 10)
	msg := p.waitReason(t, v1alpha1.ReasonResponseTooLarge)
	for _, want := range []string{"watch event", "RemoteClusterAccess test/tenant", "--max-remote-response-bytes", "configmaps in namespace " + ns} {
		if !strings.Contains(msg, want) {
			t.Errorf("the message does not name %q: %s", want, msg)
		}
	}

	path := "/api/v1/namespaces/" + ns + "/configmaps"
	lists := requests.Count("LIST", path)
	const watching = 4 * retry
	for end := time.Now().Add(watching); time.Now().Before(end); {
		p.ensure(t, m) // what the reconciler does at every recheck
		time.Sleep(200 * time.Millisecond)
	}
	again := requests.Count("LIST", path) - lists
	t.Logf("%d LISTs in %s with a retry period of %s", again, watching, retry)
	if again < 1 || again > int(watching/retry)+1 {
		t.Errorf("%d LISTs in %s, want one every %s at most", again, watching, retry)
	}
	msg = p.waitReason(t, v1alpha1.ReasonResponseTooLarge)
	if !strings.Contains(msg, "LIST page") {
		t.Errorf("after a relist the message names no LIST page: %s", msg)
	}

	resize(1024)
	p.waitHolds(t, m, 10)
}
