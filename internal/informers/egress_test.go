package informers_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/egress"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/informers"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestRefusedDialIsEndpointNotAllowed watches a remote cluster whose every
// dial the egress check refuses, as when its server's name resolves
// outside --cluster-allowed-endpoints after the access was admitted: the
// metric hears EndpointNotAllowed, a policy refusal, not
// ClusterUnreachable, which would send the user looking for an outage.
func TestRefusedDialIsEndpointNotAllowed(t *testing.T) {
	testenv.Require(t, env)
	cfg := rest.CopyConfig(env.Config)
	cfg.Dial = (&net.Dialer{Timeout: time.Second, Control: egress.Control(func(netip.Addr) bool { return false })}).DialContext
	dyn, md := clientsFor(t, cfg)
	reg := registry.New()
	m := newManager(t, reg, &informers.Clients{Dynamic: dyn, Metadata: md, ReportUnreachable: true}, informers.Options{})
	e, err := evaluation.Compile(evaluation.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	failed := make(chan error, 10)
	key := registry.InformerKey{Cluster: "rebound", GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}}
	sub := &registry.Subscription{ID: "refused", Aggregate: evaluation.NewAggregate(e), MetadataOnly: true,
		OnError: func(err error) { failed <- err }}
	reg.Register(key, sub)

	startManager(t, m)
	if err := m.Ensure(key, schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, sub); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-failed:
		if got := reason.Of(err, ""); got != v1alpha1.ReasonEndpointNotAllowed {
			t.Fatalf("the metric heard %s (%v), want %s", got, err, v1alpha1.ReasonEndpointNotAllowed)
		}
		t.Logf("the metric heard: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the metric heard nothing within 30s")
	}
}
