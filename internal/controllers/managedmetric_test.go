package controllers_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// fakeKind describes a Crossplane-like CRD for the tests: two served
// versions (v1beta1 stored, v1beta2 preferred by discovery).
type fakeKind struct {
	group, kind, plural string
	categories          []string
	namespaced          bool
}

func (k fakeKind) crdName() string { return k.plural + "." + k.group }

func (k fakeKind) gvr(version string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: k.group, Version: version, Resource: k.plural}
}

func (k fakeKind) crd() *unstructured.Unstructured {
	version := func(name string, storage bool) any {
		return map[string]any{"name": name, "served": true, "storage": storage,
			"schema": map[string]any{"openAPIV3Schema": map[string]any{
				"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
	}
	scope := "Cluster"
	if k.namespaced {
		scope = "Namespaced"
	}
	cats := make([]any, len(k.categories))
	for i, c := range k.categories {
		cats[i] = c
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": k.crdName()},
		"spec": map[string]any{
			"group": k.group,
			"names": map[string]any{"kind": k.kind, "listKind": k.kind + "List", "plural": k.plural,
				"singular": strings.ToLower(k.kind), "categories": cats},
			"scope":    scope,
			"versions": []any{version("v1beta1", true), version("v1beta2", false)},
		},
	}}
}

// install creates the CRD in the operator's cluster and waits until its
// resource is served.
func (k fakeKind) install(t *testing.T) {
	t.Helper()
	k.installIn(t, env.Client)
}

// installIn is install in the cluster c reaches.
func (k fakeKind) installIn(t *testing.T, c client.Client) {
	t.Helper()
	if err := c.Create(t.Context(), k.crd()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(k.gvr("v1beta1").GroupVersion().WithKind(k.kind + "List"))
		return c.List(t.Context(), list)
	})
}

// uninstall deletes the CRD and waits until it is gone. It runs in
// cleanups too, after the test's context is done.
func (k fakeKind) uninstall(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Delete(ctx, k.crd()); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, func() error {
		if err := env.Client.Get(ctx, clientKey("", k.crdName()), k.crd()); !apierrors.IsNotFound(err) {
			return fmt.Errorf("CRD %s still there (%w)", k.crdName(), err)
		}
		return nil
	})
}

// object returns a resource of the kind in version, with the given
// condition statuses ("" leaves the condition out) and labels.
func (k fakeKind) object(version, name, ready, synced string, labels map[string]string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(k.gvr(version).GroupVersion().WithKind(k.kind))
	u.SetName(name)
	if k.namespaced {
		u.SetNamespace("default")
	}
	u.SetLabels(labels)
	setConditions(u, ready, synced)
	return u
}

func setConditions(u *unstructured.Unstructured, ready, synced string) {
	var conds []any
	for typ, status := range map[string]string{"Ready": ready, "Synced": synced} {
		if status != "" {
			conds = append(conds, map[string]any{"type": typ, "status": status, "reason": "Test",
				"lastTransitionTime": "2026-01-01T00:00:00Z"})
		}
	}
	_ = unstructured.SetNestedSlice(u.Object, conds, "status", "conditions")
}

// waitEvents waits until the latest event of each object of kind in ns
// has the type and reason of want ("Type/Reason" by object name), and
// there are no others.
func waitEvents(t *testing.T, ns, kind string, want map[string]string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		var list eventsv1.EventList
		if err := env.Client.List(t.Context(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		got := map[string]string{}
		for _, e := range list.Items {
			if e.Regarding.Kind == kind {
				got[e.Regarding.Name] = e.Type + "/" + e.Reason
			}
		}
		if !maps.Equal(got, want) {
			return fmt.Errorf("events %v, want %v", got, want)
		}
		return nil
	})
}

func managedMetric(ns, name string, spec v1alpha1.ManagedMetricSpec) *v1alpha1.ManagedMetric {
	spec.EventDriven = ptr.To(true)
	spec.Interval = metav1.Duration{Duration: time.Hour} // only events can pass the tests
	return &v1alpha1.ManagedMetric{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
}

func managedConds(m *v1alpha1.ManagedMetric) func() []metav1.Condition {
	return func() []metav1.Condition { return m.Status.Conditions }
}

var crossplane = []string{"crossplane", "managed", "all"}

// TestManagedMetricCountsManagedResources is the acceptance test of
// ManagedMetric on the local cluster: every kind whose CRD carries both
// categories is counted, each object once although its CRD serves two
// versions, by its Ready and Synced conditions; a managed CRD installed at
// run time is picked up without a restart, a deleted one takes its series
// and watch along; a CRD without the categories is never counted.
func TestManagedMetricCountsManagedResources(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "mm-all"
	createNamespace(t, ns)
	sink := otlpsink.Start(t)
	create(t, &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "collector", Namespace: ns},
		Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: sink.HTTPURL()}}})
	buckets := fakeKind{group: "s3.mm.test", kind: "Bucket", plural: "buckets", categories: crossplane}
	instances := fakeKind{group: "rds.mm.test", kind: "Instance", plural: "instances", categories: crossplane, namespaced: true}
	plain := fakeKind{group: "plain.mm.test", kind: "Gadget", plural: "gadgets", categories: []string{"crossplane"}}
	for _, k := range []fakeKind{buckets, instances, plain} {
		k.install(t)
		t.Cleanup(func() { k.uninstall(t) })
	}
	b3 := buckets.object("v1beta2", "b3", "False", "True", nil, nil)
	create(t,
		buckets.object("v1beta1", "b1", "True", "True", nil, nil),
		buckets.object("v1beta2", "b2", "True", "True", nil, nil),
		b3,
		buckets.object("v1beta1", "b4", "", "", nil, nil),
		instances.object("v1beta1", "i1", "True", "False", nil, nil),
		plain.object("v1beta1", "g1", "True", "True", nil, nil),
	)
	m := managedMetric(ns, "all", v1alpha1.ManagedMetricSpec{Name: "mm_all",
		DataSinkRef: &v1alpha1.DataSinkReference{Name: "collector"}})
	create(t, m)

	const bucket = "cluster=local,group=s3.mm.test,kind=Bucket"
	const instance = "cluster=local,group=rds.mm.test,kind=Instance"
	waitSamplesWithin(t, 30*time.Second, "mm_all",
		"{"+bucket+",ready=False,synced=True,version=v1beta2} 1",
		"{"+bucket+",ready=True,synced=True,version=v1beta2} 2",
		"{"+bucket+",ready=Unknown,synced=Unknown,version=v1beta2} 1",
		"{"+instance+",ready=True,synced=False,version=v1beta2} 1")
	waitReadyWithin(t, 30*time.Second, m, managedConds(m), metav1.ConditionTrue, v1alpha1.ReasonReady)
	testenv.Eventually(t, 10*time.Second, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(m), m); err != nil {
			return err
		}
		if m.Status.Observation.Resources != 5 || m.Status.Observation.Series != 4 || m.Status.Mode != v1alpha1.ModeEventDriven {
			return fmt.Errorf("status.observation = %+v, mode %q; want 5 resources in 4 series, EventDriven", m.Status.Observation, m.Status.Mode)
		}
		return nil
	})
	point := func(group, kind, ready, synced string) string {
		return fmt.Sprint(map[string]string{"cluster": "local", "group": group, "kind": kind,
			"ready": ready, "synced": synced, "version": "v1beta2"})
	}
	waitPoints(t, sink, "mm_all", map[string]int64{
		point("s3.mm.test", "Bucket", "False", "True"):      1,
		point("s3.mm.test", "Bucket", "True", "True"):       2,
		point("s3.mm.test", "Bucket", "Unknown", "Unknown"): 1,
		point("rds.mm.test", "Instance", "True", "False"):   1,
	})
	// One watch per managed resource, in one version; none on the CRD
	// without the categories.
	for _, k := range []fakeKind{buckets, instances} {
		if !informerActive(registry.InformerKey{Cluster: "local", GVR: k.gvr("v1beta2")}) {
			t.Errorf("no watch on %s; active: %v", k.gvr("v1beta2"), op.Informers.Active())
		}
	}
	for _, ik := range op.Informers.Active() {
		if ik.GVR.Group == plain.group || ik.GVR.Version == "v1beta1" && ik.GVR.Group != "" {
			t.Errorf("unexpected watch %v", ik)
		}
	}

	// A Ready flip moves one object between series, from the watch.
	start := time.Now()
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(b3), b3); err != nil {
		t.Fatal(err)
	}
	setConditions(b3, "True", "True")
	if err := env.Client.Update(ctx, b3); err != nil {
		t.Fatal(err)
	}
	waitSamplesWithin(t, eventTimeout, "mm_all",
		"{"+bucket+",ready=True,synced=True,version=v1beta2} 3",
		"{"+bucket+",ready=Unknown,synced=Unknown,version=v1beta2} 1",
		"{"+instance+",ready=True,synced=False,version=v1beta2} 1")
	t.Logf("Ready flip on /metrics after %s", time.Since(start).Round(time.Millisecond))

	// A managed CRD installed now is counted without a restart.
	tables := fakeKind{group: "db.mm.test", kind: "Table", plural: "tables", categories: crossplane}
	tables.install(t)
	t.Cleanup(func() { tables.uninstall(t) })
	create(t, tables.object("v1beta1", "t1", "False", "False", nil, nil))
	const table = "cluster=local,group=db.mm.test,kind=Table"
	waitSamplesWithin(t, 30*time.Second, "mm_all",
		"{"+bucket+",ready=True,synced=True,version=v1beta2} 3",
		"{"+bucket+",ready=Unknown,synced=Unknown,version=v1beta2} 1",
		"{"+instance+",ready=True,synced=False,version=v1beta2} 1",
		"{"+table+",ready=False,synced=False,version=v1beta2} 1")

	if n := selfMetric(t, "metrics_operator_managed_kinds", "cluster", "local"); n != 3 {
		t.Errorf("metrics_operator_managed_kinds = %v, want 3", n)
	}

	// Its CRD deleted: its series and its watch go, the others stay.
	tables.uninstall(t)
	waitSamplesWithin(t, 30*time.Second, "mm_all",
		"{"+bucket+",ready=True,synced=True,version=v1beta2} 3",
		"{"+bucket+",ready=Unknown,synced=Unknown,version=v1beta2} 1",
		"{"+instance+",ready=True,synced=False,version=v1beta2} 1")
	testenv.Eventually(t, 30*time.Second, func() error {
		if informerActive(registry.InformerKey{Cluster: "local", GVR: tables.gvr("v1beta2")}) {
			return fmt.Errorf("the watch of the deleted CRD still runs")
		}
		return nil
	})
	waitReadyWithin(t, 10*time.Second, m, managedConds(m), metav1.ConditionTrue, v1alpha1.ReasonReady)

	// Deleting the metric stops the watches only it used.
	if err := env.Client.Delete(ctx, m); err != nil {
		t.Fatal(err)
	}
	waitFamilyGone(t, eventTimeout, "mm_all")
	testenv.Eventually(t, eventTimeout, func() error {
		for _, ik := range op.Informers.Active() {
			if ik.GVR.Group == buckets.group || ik.GVR.Group == instances.group {
				return fmt.Errorf("watch %v still runs", ik)
			}
		}
		return nil
	})
}

// TestManagedMetricTargetDimensionsAndSelectors narrows a ManagedMetric by
// a partial target, a kind named as kubectl names it, a label selector,
// and replaces ready/synced by spec.dimensions, which merge kinds.
func TestManagedMetricTargetDimensionsAndSelectors(t *testing.T) {
	testenv.Require(t, env)
	ns := "mm-target"
	createNamespace(t, ns)
	buckets := fakeKind{group: "aws.mm2.test", kind: "Bucket", plural: "buckets", categories: crossplane}
	queues := fakeKind{group: "aws.mm2.test", kind: "Queue", plural: "queues", categories: crossplane}
	disks := fakeKind{group: "gcp.mm2.test", kind: "Disk", plural: "disks", categories: crossplane}
	for _, k := range []fakeKind{buckets, queues, disks} {
		k.install(t)
		t.Cleanup(func() { k.uninstall(t) })
	}
	eu, us := map[string]any{"region": "eu"}, map[string]any{"region": "us"}
	a, b := map[string]string{"team": "a"}, map[string]string{"team": "b"}
	create(t,
		buckets.object("v1beta1", "b1", "True", "True", a, eu),
		buckets.object("v1beta1", "b2", "False", "True", b, us),
		queues.object("v1beta2", "q1", "True", "True", a, eu),
		disks.object("v1beta1", "d1", "True", "True", a, eu),
	)
	group := managedMetric(ns, "group", v1alpha1.ManagedMetricSpec{Name: "mm_group",
		Target: &v1alpha1.ManagedTarget{Group: "aws.mm2.test"}})
	kind := managedMetric(ns, "kind", v1alpha1.ManagedMetricSpec{Name: "mm_kind",
		Target: &v1alpha1.ManagedTarget{Group: "aws.mm2.test", Kind: "buckets", Version: "v1beta1"}})
	regions := managedMetric(ns, "regions", v1alpha1.ManagedMetricSpec{Name: "mm_regions",
		Target:     &v1alpha1.ManagedTarget{Group: "aws.mm2.test"},
		Dimensions: []v1alpha1.Projection{{Name: "region", FieldPath: "spec.region"}}})
	teamA := managedMetric(ns, "team-a", v1alpha1.ManagedMetricSpec{Name: "mm_team_a",
		Target: &v1alpha1.ManagedTarget{Group: "aws.mm2.test"}, LabelSelector: "team=a"})
	missing := managedMetric(ns, "missing", v1alpha1.ManagedMetricSpec{Name: "mm_missing",
		Target: &v1alpha1.ManagedTarget{Group: "aws.mm2.test", Kind: "Table"}})
	inEU := managedMetric(ns, "in-eu", v1alpha1.ManagedMetricSpec{Name: "mm_in_eu",
		Target: &v1alpha1.ManagedTarget{Group: "aws.mm2.test"}, FieldSelector: "spec.region=eu"})
	reserved := managedMetric(ns, "reserved", v1alpha1.ManagedMetricSpec{Name: "go_goroutines"})
	create(t, group, kind, regions, teamA, missing, inEU, reserved)

	waitSamplesWithin(t, 30*time.Second, "mm_group",
		"{cluster=local,group=aws.mm2.test,kind=Bucket,ready=False,synced=True,version=v1beta2} 1",
		"{cluster=local,group=aws.mm2.test,kind=Bucket,ready=True,synced=True,version=v1beta2} 1",
		"{cluster=local,group=aws.mm2.test,kind=Queue,ready=True,synced=True,version=v1beta2} 1")
	waitSamplesWithin(t, 30*time.Second, "mm_kind",
		"{cluster=local,group=aws.mm2.test,kind=Bucket,ready=False,synced=True,version=v1beta1} 1",
		"{cluster=local,group=aws.mm2.test,kind=Bucket,ready=True,synced=True,version=v1beta1} 1")
	// spec.dimensions replaces group, version, kind, ready and synced: a
	// Bucket and a Queue in eu are one series.
	waitSamplesWithin(t, 30*time.Second, "mm_regions",
		"{cluster=local,region=eu} 2", "{cluster=local,region=us} 1")
	waitSamplesWithin(t, 30*time.Second, "mm_team_a",
		"{cluster=local,group=aws.mm2.test,kind=Bucket,ready=True,synced=True,version=v1beta2} 1",
		"{cluster=local,group=aws.mm2.test,kind=Queue,ready=True,synced=True,version=v1beta2} 1")
	waitSamplesWithin(t, 30*time.Second, "mm_in_eu",
		"{cluster=local,group=aws.mm2.test,kind=Bucket,ready=True,synced=True,version=v1beta2} 1",
		"{cluster=local,group=aws.mm2.test,kind=Queue,ready=True,synced=True,version=v1beta2} 1")
	waitReadyWithin(t, 30*time.Second, missing, managedConds(missing), metav1.ConditionFalse, v1alpha1.ReasonTargetNotFound)
	waitReadyWithin(t, 30*time.Second, reserved, managedConds(reserved), metav1.ConditionFalse, v1alpha1.ReasonReservedName)

	// A Metric on the same resource joins the managed kind's watch. (Had
	// it come first, its metadata-only watch would have been replaced by
	// a full one when the ManagedMetrics, which read status, joined.)
	plainBuckets := eventDriven(ns, "plain-buckets", v1alpha1.MetricSpec{Name: "mm_plain_buckets",
		Target: v1alpha1.GroupVersionKind{Group: buckets.group, Version: "v1beta2", Kind: "Bucket"}})
	create(t, plainBuckets)
	// A younger ManagedMetric of the same exported name is not exported.
	// Creation times have whole seconds: the twin must be a second younger.
	time.Sleep(time.Until(plainBuckets.CreationTimestamp.Add(1100 * time.Millisecond)))
	twin := managedMetric(ns, "twin", v1alpha1.ManagedMetricSpec{Name: "mm_plain_buckets"})
	create(t, twin)
	waitReadyWithin(t, 30*time.Second, twin, managedConds(twin), metav1.ConditionFalse, v1alpha1.ReasonDuplicateName)
	waitSamplesWithin(t, 30*time.Second, "mm_plain_buckets", "{cluster=local,group=aws.mm2.test,kind=Bucket,version=v1beta2} 2")

	// The Metric and three ManagedMetrics read buckets in v1beta2: one watch.
	path := "/apis/aws.mm2.test/v1beta2/buckets"
	if err := requests.CheckSharedWatch(path); err != nil {
		t.Error(err)
	}
	var watches []string
	for _, ik := range op.Informers.Active() {
		if ik.GVR.Group == "aws.mm2.test" || ik.GVR.Group == "gcp.mm2.test" {
			watches = append(watches, ik.GVR.Version+"/"+ik.GVR.Resource)
		}
	}
	slices.Sort(watches)
	// The twin reads every managed kind, hence the disks.
	if want := []string{"v1beta1/buckets", "v1beta2/buckets", "v1beta2/disks", "v1beta2/queues"}; !slices.Equal(watches, want) {
		t.Errorf("watches = %v, want %v", watches, want)
	}
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(regions), regions); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(regions.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("mm_regions Ready = %+v", c)
	}
}

// TestManagedMetricPollingAndEventDrivenAgree evaluates one spec in both
// modes, and switches the polling one to events without a gap.
func TestManagedMetricPollingAndEventDrivenAgree(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "mm-modes"
	createNamespace(t, ns)
	clusters := fakeKind{group: "k8s.mm3.test", kind: "Cluster", plural: "clusters", categories: crossplane}
	pools := fakeKind{group: "k8s.mm3.test", kind: "NodePool", plural: "nodepools", categories: crossplane, namespaced: true}
	for _, k := range []fakeKind{clusters, pools} {
		k.install(t)
		t.Cleanup(func() { k.uninstall(t) })
	}
	create(t,
		clusters.object("v1beta1", "c1", "True", "True", nil, nil),
		clusters.object("v1beta2", "c2", "False", "True", nil, nil),
		pools.object("v1beta1", "p1", "True", "True", nil, nil),
	)
	spec := func(name string) v1alpha1.ManagedMetricSpec {
		return v1alpha1.ManagedMetricSpec{Name: name, Target: &v1alpha1.ManagedTarget{Group: clusters.group}}
	}
	ed := managedMetric(ns, "events", spec("mm_modes_events"))
	polled := managedMetric(ns, "polled", spec("mm_modes_polled"))
	polled.Spec.EventDriven = ptr.To(false)
	polled.Spec.Interval = metav1.Duration{Duration: 10 * time.Second}
	create(t, ed, polled)
	want := []string{
		"{cluster=local,group=k8s.mm3.test,kind=Cluster,ready=False,synced=True,version=v1beta2} 1",
		"{cluster=local,group=k8s.mm3.test,kind=Cluster,ready=True,synced=True,version=v1beta2} 1",
		"{cluster=local,group=k8s.mm3.test,kind=NodePool,ready=True,synced=True,version=v1beta2} 1",
	}
	waitSamplesWithin(t, 30*time.Second, "mm_modes_events", want...)
	waitSamplesWithin(t, 30*time.Second, "mm_modes_polled", want...)
	waitReadyWithin(t, 30*time.Second, polled, managedConds(polled), metav1.ConditionTrue, v1alpha1.ReasonReady)
	// The observation may trail the condition by a status interval.
	testenv.Eventually(t, 10*time.Second, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(polled), polled); err != nil {
			return err
		}
		if polled.Status.Mode != v1alpha1.ModePolling || polled.Status.Observation.Resources != 3 {
			return fmt.Errorf("polled status: mode %q, observation %+v; want Polling, 3 resources", polled.Status.Mode, polled.Status.Observation)
		}
		return nil
	})

	// A change reaches the polling metric at its next poll.
	create(t, clusters.object("v1beta1", "c3", "True", "True", nil, nil))
	want[1] = "{cluster=local,group=k8s.mm3.test,kind=Cluster,ready=True,synced=True,version=v1beta2} 2"
	waitSamplesWithin(t, eventTimeout, "mm_modes_events", want...)
	waitSamplesWithin(t, 30*time.Second, "mm_modes_polled", want...)

	// Switched to events by the annotation: the same series, then live.
	testenv.Update(t, env.Client, polled, func() {
		polled.Annotations = map[string]string{v1alpha1.EventDrivenAnnotation: "true"}
	})
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(polled), polled); err != nil {
			return err
		}
		if polled.Status.Mode != v1alpha1.ModeEventDriven {
			return fmt.Errorf("status.mode = %q", polled.Status.Mode)
		}
		return nil
	})
	waitSamplesWithin(t, eventTimeout, "mm_modes_polled", want...)
	if err := env.Client.Delete(ctx, clusters.object("v1beta1", "c1", "", "", nil, nil)); err != nil {
		t.Fatal(err)
	}
	want[1] = "{cluster=local,group=k8s.mm3.test,kind=Cluster,ready=True,synced=True,version=v1beta2} 1"
	waitSamplesWithin(t, eventTimeout, "mm_modes_polled", want...)
	waitSamplesWithin(t, eventTimeout, "mm_modes_events", want...)
}

// TestManagedMetricAccessAndLimits checks what a ManagedMetric may read and
// hold: reading as a ServiceAccount, a managed kind it may not list and
// watch is left out and named in the Ready message, and a metric that may
// read none of its kinds is Forbidden; spec.maxSeries caps the merged
// series; a RemoteClusterAccess that does not exist is ClusterUnreachable.
func TestManagedMetricAccessAndLimits(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "mm-access"
	createNamespace(t, ns)
	buckets := fakeKind{group: "aws.mm4.test", kind: "Bucket", plural: "buckets", categories: crossplane}
	queues := fakeKind{group: "aws.mm4.test", kind: "Queue", plural: "queues", categories: crossplane}
	for _, k := range []fakeKind{buckets, queues} {
		k.install(t)
		t.Cleanup(func() { k.uninstall(t) })
	}
	eu, us := map[string]any{"region": "eu"}, map[string]any{"region": "us"}
	create(t,
		buckets.object("v1beta1", "b1", "True", "True", nil, eu),
		buckets.object("v1beta1", "b2", "True", "True", nil, us),
		queues.object("v1beta1", "q1", "False", "True", nil, eu),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "mm-access-buckets"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{buckets.group}, Resources: []string{"buckets"}, Verbs: []string{"list", "watch"}}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "mm-access-buckets"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "mm-access-buckets"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reader", Namespace: ns}}},
	)

	partial := managedMetric(ns, "partial", v1alpha1.ManagedMetricSpec{Name: "mm_access_partial",
		Target: &v1alpha1.ManagedTarget{Group: buckets.group}, ServiceAccountName: "reader"})
	none := managedMetric(ns, "none", v1alpha1.ManagedMetricSpec{Name: "mm_access_none",
		Target: &v1alpha1.ManagedTarget{Group: queues.group, Kind: "Queue"}, ServiceAccountName: "reader"})
	capped := managedMetric(ns, "capped", v1alpha1.ManagedMetricSpec{Name: "mm_access_capped",
		Target: &v1alpha1.ManagedTarget{Group: buckets.group}, MaxSeries: ptr.To[int32](1)})
	merged := managedMetric(ns, "merged", v1alpha1.ManagedMetricSpec{Name: "mm_access_merged",
		Target: &v1alpha1.ManagedTarget{Group: buckets.group}, MaxSeries: ptr.To[int32](2),
		Dimensions: []v1alpha1.Projection{{Name: "region", FieldPath: "spec.region"}}})
	remote := managedMetric(ns, "remote", v1alpha1.ManagedMetricSpec{Name: "mm_access_remote",
		RemoteClusterAccessRef: &v1alpha1.NamespacedReference{Name: "elsewhere"}})
	create(t, partial, none, capped, merged, remote)

	waitSamplesWithin(t, 30*time.Second, "mm_access_partial",
		"{cluster=local,group=aws.mm4.test,kind=Bucket,ready=True,synced=True,version=v1beta2} 2")
	waitReadyWithin(t, 30*time.Second, partial, managedConds(partial), metav1.ConditionTrue, v1alpha1.ReasonReady)
	if c := meta.FindStatusCondition(partial.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, "1 selected managed kinds left out") ||
		!strings.Contains(c.Message, "aws.mm4.test") || !strings.Contains(c.Message, "queues") {
		t.Errorf("Ready message does not name the kind left out: %q", c.Message)
	}
	waitReadyWithin(t, 30*time.Second, none, managedConds(none), metav1.ConditionFalse, v1alpha1.ReasonForbidden)
	if c := meta.FindStatusCondition(none.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, "system:serviceaccount:"+ns+":reader") {
		t.Errorf("Forbidden message does not name the ServiceAccount: %q", c.Message)
	}
	// Buckets and queues are two series by kind and state: over its cap of 1.
	waitReadyWithin(t, 30*time.Second, capped, managedConds(capped), metav1.ConditionFalse, v1alpha1.ReasonSeriesLimitExceeded)
	// Grouped by region they are two series (a bucket and a queue in eu),
	// within the cap, although the kinds hold three between them.
	waitSamplesWithin(t, 30*time.Second, "mm_access_merged", "{cluster=local,region=eu} 2", "{cluster=local,region=us} 1")
	waitReadyWithin(t, 30*time.Second, merged, managedConds(merged), metav1.ConditionTrue, v1alpha1.ReasonReady)
	waitReadyWithin(t, 30*time.Second, remote, managedConds(remote), metav1.ConditionFalse, v1alpha1.ReasonClusterUnreachable)
	// Each transition is an event on the ManagedMetric.
	waitEvents(t, ns, "ManagedMetric", map[string]string{"partial": "Normal/Ready", "none": "Warning/Forbidden",
		"capped": "Warning/SeriesLimitExceeded", "merged": "Normal/Ready", "remote": "Warning/ClusterUnreachable"})
	for _, family := range []string{"mm_access_none", "mm_access_capped", "mm_access_remote"} {
		if familyOnMetrics(t, family) {
			t.Errorf("%s is on /metrics although it is not ready", family)
		}
	}

	// The capped metric recovers once the queue goes: one series left.
	if err := env.Client.Delete(ctx, queues.object("v1beta1", "q1", "", "", nil, nil)); err != nil {
		t.Fatal(err)
	}
	waitReadyWithin(t, 30*time.Second, capped, managedConds(capped), metav1.ConditionTrue, v1alpha1.ReasonReady)
	waitSamplesWithin(t, eventTimeout, "mm_access_capped",
		"{cluster=local,group=aws.mm4.test,kind=Bucket,ready=True,synced=True,version=v1beta2} 2")
}

// TestManagedMetricsShareWatches creates 50 ManagedMetrics of different
// targets and selectors over two managed kinds: the operator holds one
// watch per managed resource plus its one watch on CRDs, and changes make
// no LIST.
func TestManagedMetricsShareWatches(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "mm-shared"
	createNamespace(t, ns)
	nets := fakeKind{group: "net.mm5.test", kind: "Network", plural: "networks", categories: crossplane}
	subnets := fakeKind{group: "net.mm5.test", kind: "Subnet", plural: "subnets", categories: crossplane, namespaced: true}
	for _, k := range []fakeKind{nets, subnets} {
		k.install(t)
		t.Cleanup(func() { k.uninstall(t) })
	}
	n1 := nets.object("v1beta1", "n1", "False", "True", map[string]string{"tier": "a"}, nil)
	create(t, n1, subnets.object("v1beta1", "s1", "True", "True", map[string]string{"tier": "b"}, nil))
	const metrics = 50
	for i := range metrics {
		spec := v1alpha1.ManagedMetricSpec{Name: fmt.Sprintf("mm_shared_%d", i), Target: &v1alpha1.ManagedTarget{Group: nets.group}}
		switch i % 3 {
		case 1:
			spec.Target.Kind = "network"
		case 2:
			spec.LabelSelector = "tier=a"
		}
		create(t, managedMetric(ns, fmt.Sprintf("m%d", i), spec))
	}
	const network = "{cluster=local,group=net.mm5.test,kind=Network,ready=False,synced=True,version=v1beta2} 1"
	for i := range metrics {
		want := []string{network,
			"{cluster=local,group=net.mm5.test,kind=Subnet,ready=True,synced=True,version=v1beta2} 1"}
		if i%3 != 0 {
			want = want[:1]
		}
		waitSamplesWithin(t, 30*time.Second, fmt.Sprintf("mm_shared_%d", i), want...)
	}
	paths := []string{"/apis/net.mm5.test/v1beta2/networks", "/apis/net.mm5.test/v1beta2/subnets",
		"/apis/apiextensions.k8s.io/v1/customresourcedefinitions"}
	lists := map[string]int{}
	for _, p := range paths {
		if err := requests.CheckSharedWatch(p); err != nil {
			t.Error(err)
		} else if n := requests.Count("WATCH", p); n > 1 {
			t.Logf("%d watches on %s, one at a time: %v", n, p, requests.EndedWatches(p))
		}
		lists[p] = requests.Reads(p)
	}
	start := time.Now()
	const flips = 11 // the last makes it Ready
	for i := range flips {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(n1), n1); err != nil {
			t.Fatal(err)
		}
		ready := []string{"True", "False"}[i%2]
		setConditions(n1, ready, "True")
		if err := env.Client.Update(ctx, n1); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"mm_shared_1", "mm_shared_2", "mm_shared_49"} {
		waitSamplesWithin(t, eventTimeout, name, strings.Replace(network, "ready=False", "ready=True", 1))
	}
	t.Logf("%d Ready flips seen by 50 metrics after %s", flips, time.Since(start).Round(time.Millisecond))
	for _, p := range paths {
		if n := requests.Reads(p) - lists[p]; n != 0 {
			t.Errorf("%d LISTs of %s after the sync, want 0", n, p)
		}
	}
}
