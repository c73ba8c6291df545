package controllers_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// createIn creates objs in the cluster c reaches.
func createIn(t *testing.T, c client.Client, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := c.Create(t.Context(), o); err != nil {
			t.Fatalf("creating %s: %v", o.GetName(), err)
		}
	}
}

// TestManagedMetricReadsTheRemoteCluster runs the operator's control
// plane and a remote one, both serving the same managed kind with other
// objects. ManagedMetrics through a RemoteClusterAccess, event-driven and
// polling, count the remote cluster's managed resources under
// cluster="blue", not the local ones; a Ready flip there moves one
// resource between series from the watch; a managed CRD installed later
// on the remote cluster is picked up through that cluster's own CRD
// watch, which both metrics share and which stops with the last of them.
func TestManagedMetricReadsTheRemoteCluster(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	remote := startRemote(t)
	ns := "mm-remote"
	createNamespace(t, ns)
	buckets := fakeKind{group: "s3.mmr.test", kind: "Bucket", plural: "buckets", categories: crossplane}
	buckets.install(t)
	t.Cleanup(func() { buckets.uninstall(t) })
	buckets.installIn(t, remote.Client)
	create(t, buckets.object("v1beta1", "local-only", "True", "True", nil, nil))
	flip := buckets.object("v1beta1", "r2", "False", "True", nil, nil)
	createIn(t, remote.Client,
		buckets.object("v1beta1", "r1", "True", "True", nil, nil),
		flip,
		buckets.object("v1beta2", "r3", "True", "True", nil, nil))

	create(t, kubeconfigSecret(ns, "blue-kubeconfig", adminKubeconfig(t, remote, "mm-remote")))
	rca := remoteAccess(ns, "blue-access", "blue-kubeconfig", "blue")
	create(t, rca)
	waitAccess(t, rca, metav1.ConditionTrue, v1alpha1.ReasonReady)

	ref := &v1alpha1.NamespacedReference{Name: "blue-access"}
	events := managedMetric(ns, "events", v1alpha1.ManagedMetricSpec{Name: "mm_remote_events", RemoteClusterAccessRef: ref})
	polled := managedMetric(ns, "polled", v1alpha1.ManagedMetricSpec{Name: "mm_remote_polled", RemoteClusterAccessRef: ref})
	polled.Spec.EventDriven = ptr.To(false)
	polled.Spec.Interval = metav1.Duration{Duration: 10 * time.Second}
	local := managedMetric(ns, "local", v1alpha1.ManagedMetricSpec{Name: "mm_remote_local",
		Target: &v1alpha1.ManagedTarget{Group: buckets.group}})
	create(t, events, polled, local)

	const bucket = "{cluster=blue,group=s3.mmr.test,kind=Bucket,"
	want := []string{bucket + "ready=False,synced=True,version=v1beta2} 1", bucket + "ready=True,synced=True,version=v1beta2} 2"}
	waitSamplesWithin(t, 30*time.Second, "mm_remote_events", want...)
	waitSamplesWithin(t, 30*time.Second, "mm_remote_polled", want...)
	waitSamplesWithin(t, 30*time.Second, "mm_remote_local", "{cluster=local,group=s3.mmr.test,kind=Bucket,ready=True,synced=True,version=v1beta2} 1")
	waitReadyWithin(t, 30*time.Second, events, managedConds(events), metav1.ConditionTrue, v1alpha1.ReasonReady)
	waitReadyWithin(t, 30*time.Second, polled, managedConds(polled), metav1.ConditionTrue, v1alpha1.ReasonReady)
	testenv.Eventually(t, 10*time.Second, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(events), events); err != nil {
			return err
		}
		if events.Status.Observation.Resources != 3 {
			return fmt.Errorf("status.observation = %+v, want 3 resources", events.Status.Observation)
		}
		return nil
	})
	remoteKey := ns + "/blue-access"
	if !informerActive(registry.InformerKey{Cluster: remoteKey, GVR: buckets.gvr("v1beta2")}) {
		t.Errorf("no watch of the remote buckets; active: %v", op.Informers.Active())
	}
	if got := op.ManagedKinds.Active(); !slices.Equal(got, []string{remoteKey}) {
		t.Errorf("remote CRD watches %v, want one of %s for both metrics", got, remoteKey)
	}

	// A Ready flip on the remote cluster moves one resource, from the watch.
	start := time.Now()
	if err := remote.Client.Get(ctx, client.ObjectKeyFromObject(flip), flip); err != nil {
		t.Fatal(err)
	}
	setConditions(flip, "True", "True")
	if err := remote.Client.Update(ctx, flip); err != nil {
		t.Fatal(err)
	}
	waitSamplesWithin(t, eventTimeout, "mm_remote_events", bucket+"ready=True,synced=True,version=v1beta2} 3")
	t.Logf("remote Ready flip on /metrics after %s", time.Since(start).Round(time.Millisecond))

	// A managed CRD installed later on the remote cluster only.
	queues := fakeKind{group: "sqs.mmr.test", kind: "Queue", plural: "queues", categories: crossplane, namespaced: true}
	queues.installIn(t, remote.Client)
	createIn(t, remote.Client, queues.object("v1beta1", "q1", "True", "False", nil, nil))
	want = []string{bucket + "ready=True,synced=True,version=v1beta2} 3",
		"{cluster=blue,group=sqs.mmr.test,kind=Queue,ready=True,synced=False,version=v1beta2} 1"}
	waitSamplesWithin(t, 30*time.Second, "mm_remote_events", want...)
	waitSamplesWithin(t, 30*time.Second, "mm_remote_polled", want...)
	if n := selfMetric(t, "metrics_operator_managed_kinds", "cluster", "blue"); n != 2 {
		t.Errorf("metrics_operator_managed_kinds{cluster=blue} = %v, want 2", n)
	}
	if informerActive(registry.InformerKey{Cluster: "local", GVR: queues.gvr("v1beta2")}) {
		t.Error("a watch of queues in the local cluster, which does not serve them")
	}

	// The remote CRD watch and the remote watches stop with the last
	// metric reading the cluster.
	for _, m := range []*v1alpha1.ManagedMetric{events, polled} {
		if err := env.Client.Delete(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	waitFamilyGone(t, eventTimeout, "mm_remote_events")
	testenv.Eventually(t, eventTimeout, func() error {
		if got := op.ManagedKinds.Active(); len(got) != 0 {
			return fmt.Errorf("remote CRD watches %v after the metrics went", got)
		}
		for _, ik := range op.Informers.Active() {
			if ik.Cluster == remoteKey {
				return fmt.Errorf("watch %v still runs", ik)
			}
		}
		return nil
	})
	waitSamplesWithin(t, eventTimeout, "mm_remote_local", "{cluster=local,group=s3.mmr.test,kind=Bucket,ready=True,synced=True,version=v1beta2} 1")
}
