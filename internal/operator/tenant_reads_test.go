package operator_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// gateObject is a managed resource of the kind TestHangingClustersOfOneNamespaceLeaveNeighboursPolled
// installs.
func gateObject(name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "opmm.test/v1", "kind": "Gate",
		"metadata": map[string]any{"name": name}}}
}

// pollingGates is a polling ManagedMetric prefix+name counting the Gates
// of the cluster of the RemoteClusterAccess access; name is also a
// Prometheus name.
func pollingGates(ns, prefix, name, access string, interval time.Duration) *v1alpha1.ManagedMetric {
	return &v1alpha1.ManagedMetric{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.ManagedMetricSpec{Name: prefix + name, Target: &v1alpha1.ManagedTarget{Group: "opmm.test", Kind: "Gate"},
			EventDriven: ptr.To(false), Interval: metav1.Duration{Duration: interval},
			RemoteClusterAccessRef: &v1alpha1.NamespacedReference{Name: access}}}
}

// TestHangingClustersOfOneNamespaceLeaveNeighboursPolled: a tenant
// namespace has six RemoteClusterAccesses to an API server that answers
// the probe and discovery but never a LIST, so that each of its clusters,
// healthy at first and found back after each back-off, holds a worker for
// a poll's deadline; through each, two polling Metrics and a polling
// ManagedMetric with a one-minute interval, whose deadline is a minute. A
// neighbour namespace's polling Metric and polling ManagedMetric (10 s)
// read a healthy remote cluster, with the default four polling workers:
// each write shows within about their interval, and the tenant's refused
// reads are counted under its namespace.
func TestHangingClustersOfOneNamespaceLeaveNeighboursPolled(t *testing.T) {
	testenv.Require(t, env)
	const tenant, neighbour, prefix = "tenant-reads-tenant", "tenant-reads-neighbour", "tenant_reads_"
	installCRD(t, managedCRD("Gate", "gates"))
	t.Cleanup(func() {
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
		crd.SetName("gates.opmm.test")
		_ = env.Client.Delete(context.Background(), crd)
	})
	lists := func(r *http.Request) bool {
		return strings.HasSuffix(r.URL.Path, "/configmaps") || strings.HasSuffix(r.URL.Path, "/gates")
	}
	hanging, _, _ := hangingServerFor(t, lists)
	var names []string
	for i := range 6 {
		names = append(names, fmt.Sprint("hanging-", i))
	}
	tenantAccesses(t, tenant, hanging, names...)
	tenantAccesses(t, neighbour, remoteProxy(t, nil), "healthy")

	var metrics []*v1alpha1.Metric
	managed := []*v1alpha1.ManagedMetric{pollingGates(neighbour, prefix, "neighbourgates", "healthy", 10*time.Second)}
	for i, access := range names {
		for j := range 2 {
			m := limitMetric(tenant, prefix, fmt.Sprintf("hostile%d%d", i, j), "ConfigMap", false, true)
			m.Spec.RemoteClusterAccessRef.Name, m.Spec.Interval = access, metav1.Duration{Duration: time.Minute}
			metrics = append(metrics, m)
		}
		managed = append(managed, pollingGates(tenant, prefix, fmt.Sprintf("hostile%dgates", i), access, time.Minute))
	}
	local := limitMetric(neighbour, prefix, "neighbour", "ConfigMap", false, true)
	local.Spec.RemoteClusterAccessRef.Name = "healthy"
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "first", Namespace: neighbour}})
	first := gateObject("tenant-reads-first")
	mustCreate(t, first)
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), first) })
	for _, m := range managed {
		mustCreate(t, m)
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), m) })
	}
	url := runMetrics(t, operator.Options{Namespace: neighbour, ClusterBackoffMax: hangingBackoffMax}, append(metrics, local)...)

	families := []string{prefix + "neighbour", prefix + "neighbourgates"}
	took := waitCounts(t, url, families, 1, 3*time.Minute)
	t.Logf("neighbour first served %v after the start", roundAll(took))
	delays := map[string][]time.Duration{}
	for i := range 4 {
		mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("write-", i), Namespace: neighbour}})
		obj := gateObject(fmt.Sprint("tenant-reads-write-", i))
		mustCreate(t, obj)
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), obj) })
		took := waitCounts(t, url, families, float64(i+2), time.Minute)
		t.Logf("write %d on /metrics after %v", i, roundAll(took))
		for j, d := range took {
			delays[families[j]] = append(delays[families[j]], d)
		}
		time.Sleep(time.Second)
	}
	for _, f := range families {
		t.Logf("%s: writes on /metrics after %v", f, roundAll(delays[f]))
		// A write waits at most one 10 s interval for the next poll, plus
		// scheduling on a shared machine.
		if worst := slices.Max(delays[f]); worst > 20*time.Second {
			t.Errorf("%s: a write took %s to show, want within about its 10 s interval", f, worst)
		}
	}

	fams, err := scrape.Families(url)
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]float64{}
	for _, s := range scrape.Samples(fams, "metrics_operator_remote_reads_refused_total") {
		refused[s.Labels["namespace"]] = s.Value
	}
	t.Logf("reads refused: %v", refused)
	if refused[tenant] == 0 || refused[neighbour] != 0 {
		t.Errorf("reads refused by namespace %v, want some of %s and none of %s", refused, tenant, neighbour)
	}
}

// waitCounts waits until each of families has the one sample want, within
// timeout, and returns how long each took.
func waitCounts(t *testing.T, url string, families []string, want float64, timeout time.Duration) []time.Duration {
	t.Helper()
	start := time.Now()
	took := make([]time.Duration, len(families))
	testenv.Eventually(t, timeout, func() error {
		var missing []string
		for i, f := range families {
			if took[i] > 0 {
				continue
			}
			got, err := countOf(url, f)
			if err != nil {
				return err
			}
			if got != want {
				missing = append(missing, fmt.Sprintf("%s = %v", f, got))
				continue
			}
			took[i] = time.Since(start)
		}
		if len(missing) > 0 {
			return fmt.Errorf("%v after %s, want %v", missing, time.Since(start).Round(time.Second), want)
		}
		return nil
	})
	return took
}
