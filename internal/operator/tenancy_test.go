package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// recheck is the access re-check period of these tests: short, so that
// what they wait for is bounded by it rather than by the default minute.
const recheck = 2 * time.Second

var configMaps = v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}

// TestLockdownAuthorizesEachMetricAsItsServiceAccount runs the operator
// with --default-service-account: Metrics in ten tenant namespaces count
// the ConfigMaps of another namespace, each as the ServiceAccount
// "metrics" of its own namespace. They are Forbidden until a RoleBinding
// there lets them list and watch, Ready within the re-check period once it
// does, all on one shared watch, and Forbidden with their series gone once
// it is deleted, while a metric of the tenant's own namespace stays
// current throughout, on /metrics and over OTLP.
func TestLockdownAuthorizesEachMetricAsItsServiceAccount(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	sink := otlpsink.Start(t)
	target := "tenancy-b"
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: target}})
	for _, name := range []string{"one", "two"} {
		mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: target}})
	}
	tenants := make([]string, 10)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("tenancy-a%d", i)
		mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenants[i]}})
		mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "metrics", Namespace: tenants[i]}})
	}
	deleteMetricsAtEnd(t, tenants...)
	first := tenants[0]
	// The first tenant may read its own namespace from the start.
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "own", Namespace: first}})
	bindReader(t, first, "own-reader", "metrics", first)
	mustCreate(t, &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: first},
		Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: sink.HTTPURL()}}})

	var events []client.ObjectKey
	for i, ns := range tenants {
		mustCreate(t, &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "events", Namespace: ns},
			Spec: v1alpha1.MetricSpec{Name: fmt.Sprintf("tenancy_events_%d", i), Target: configMaps, Namespace: target,
				EventDriven: ptr.To(true), Interval: metav1.Duration{Duration: time.Hour}}})
		events = append(events, client.ObjectKey{Namespace: ns, Name: "events"})
	}
	polls := client.ObjectKey{Namespace: first, Name: "polls"}
	mustCreate(t, &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: polls.Name, Namespace: polls.Namespace},
		Spec: v1alpha1.MetricSpec{Name: "tenancy_polls", Target: configMaps, Namespace: target,
			Interval: metav1.Duration{Duration: 10 * time.Second}}})
	own := client.ObjectKey{Namespace: first, Name: "own"}
	mustCreate(t, &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: own.Name, Namespace: own.Namespace},
		Spec: v1alpha1.MetricSpec{Name: "tenancy_own", Target: configMaps, Namespace: first,
			EventDriven: ptr.To(true), Interval: metav1.Duration{Duration: time.Hour}}})

	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr + "/metrics"
	op := run(t, env.Config, operator.Options{MetricsAddr: addr, MetricsSecure: false, ProbeAddr: "0", Namespace: first,
		DefaultServiceAccount: "metrics", AccessRecheckPeriod: recheck, StatusInterval: time.Second,
		MinExportInterval: 500 * time.Millisecond})

	// Nobody granted anything in the target namespace yet.
	for _, key := range append([]client.ObjectKey{polls}, events...) {
		c := waitReason(t, key, v1alpha1.ReasonForbidden)
		for _, want := range []string{"system:serviceaccount:" + key.Namespace + ":metrics", "list", "configmaps", `"` + target + `"`} {
			if !strings.Contains(c.Message, want) {
				t.Errorf("%s: message %q does not name %s", key, c.Message, want)
			}
		}
	}
	t.Logf("forbidden: %s", waitReason(t, events[0], v1alpha1.ReasonForbidden).Message)
	waitValue(t, url, "tenancy_own", 1)
	if n := watchesIn(op, target); n != 0 {
		t.Fatalf("%d watches on %s for metrics that may not read it", n, target)
	}

	// A RoleBinding in the target namespace for the first tenant only.
	granted := time.Now()
	binding := bindReader(t, target, "tenant-readers", "metrics", first)
	waitReason(t, events[0], v1alpha1.ReasonReady)
	waitReason(t, polls, v1alpha1.ReasonReady)
	t.Logf("grant -> both modes Ready: %s (re-check period %s)", time.Since(granted).Round(time.Millisecond), recheck)
	waitValue(t, url, "tenancy_events_0", 2)
	waitValue(t, url, "tenancy_polls", 2)
	for _, key := range events[1:] {
		waitReason(t, key, v1alpha1.ReasonForbidden)
	}

	// Every tenant granted: ten metrics, one watch.
	for _, ns := range tenants[1:] {
		binding.Subjects = append(binding.Subjects, rbacv1.Subject{Kind: "ServiceAccount", Name: "metrics", Namespace: ns})
	}
	if err := env.Client.Update(ctx, binding); err != nil {
		t.Fatal(err)
	}
	for _, key := range events {
		waitReason(t, key, v1alpha1.ReasonReady)
	}
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "three", Namespace: target}})
	for i := range events {
		waitValue(t, url, fmt.Sprintf("tenancy_events_%d", i), 3)
	}
	if n := watchesIn(op, target); n != 1 {
		t.Fatalf("%d watches on %s for 10 metrics, want 1: %v", n, target, op.Informers.Active())
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		for _, name := range []string{"tenancy_events_9", "tenancy_polls"} {
			if _, ok := sink.Latest(name); !ok {
				return fmt.Errorf("no push of %s while it may read", name)
			}
		}
		return nil
	})

	// Revoked: every metric reading the target is Forbidden again and
	// its series are gone; the tenant's own metric is untouched.
	revoked := time.Now()
	if err := env.Client.Delete(ctx, binding); err != nil {
		t.Fatal(err)
	}
	for _, key := range append([]client.ObjectKey{polls}, events...) {
		waitReason(t, key, v1alpha1.ReasonForbidden)
	}
	t.Logf("revoke -> all Forbidden: %s", time.Since(revoked).Round(time.Millisecond))
	// A push already under way may still carry them; none after it.
	withdrawn := time.Now().Add(time.Second)
	testenv.Eventually(t, 30*time.Second, func() error {
		fams, err := scrape.Families(url)
		if err != nil {
			return err
		}
		for name := range fams {
			if s := scrape.Samples(fams, name); len(s) > 0 && (strings.HasPrefix(name, "tenancy_events_") || name == "tenancy_polls") {
				return fmt.Errorf("%s still served after its access was revoked: %v", name, scrape.Strings(s))
			}
		}
		return nil
	})
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := watchesIn(op, target); n != 0 {
			return fmt.Errorf("%d watches on %s after every metric lost access", n, target)
		}
		return nil
	})
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "own-2", Namespace: first}})
	waitValue(t, url, "tenancy_own", 2)
	waitReason(t, own, v1alpha1.ReasonReady)
	testenv.Eventually(t, 30*time.Second, func() error {
		if p := sink.LatestPoints("tenancy_own"); len(p) != 1 || p[0].Value != 2 {
			return fmt.Errorf("tenancy_own pushed as %v, want one point of value 2", p)
		}
		return nil
	})
	// Past the polling metric's heartbeat (10s): nothing of the revoked
	// metrics was pushed since they were withdrawn.
	time.Sleep(time.Until(withdrawn.Add(11 * time.Second)))
	for _, b := range sink.Received() {
		for _, m := range b.MetricList() {
			if b.Time.After(withdrawn) && (strings.HasPrefix(m.Name, "tenancy_events_") || m.Name == "tenancy_polls") {
				t.Errorf("%s pushed at %s, after its access was revoked", m.Name, b.Time.Format(time.StampMilli))
			}
		}
	}
}

// TestOwnAccessWithoutDefaultServiceAccount runs the operator without
// --default-service-account: a metric without spec.serviceAccountName
// reads with the operator's own access, a metric naming one reads as that
// ServiceAccount, and one with no spec.namespace needs that access
// cluster-wide.
func TestOwnAccessWithoutDefaultServiceAccount(t *testing.T) {
	testenv.Require(t, env)
	tenant, target := "owned-a", "owned-b"
	for _, ns := range []string{tenant, target} {
		mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	deleteMetricsAtEnd(t, tenant)
	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: tenant}})
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "one", Namespace: target}})
	plain := client.ObjectKey{Namespace: tenant, Name: "plain"}
	mustCreate(t, &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: plain.Name, Namespace: tenant},
		Spec: v1alpha1.MetricSpec{Name: "owned_plain", Target: configMaps, Namespace: target,
			EventDriven: ptr.To(true), Interval: metav1.Duration{Duration: time.Hour}}})
	named := client.ObjectKey{Namespace: tenant, Name: "named"}
	mustCreate(t, &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: named.Name, Namespace: tenant},
		Spec: v1alpha1.MetricSpec{Name: "owned_named", Target: configMaps, Namespace: target, ServiceAccountName: "reader",
			Interval: metav1.Duration{Duration: 10 * time.Second}}})
	everywhere := client.ObjectKey{Namespace: tenant, Name: "everywhere"}
	mustCreate(t, &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: everywhere.Name, Namespace: tenant},
		Spec: v1alpha1.MetricSpec{Name: "owned_everywhere", Target: configMaps, ServiceAccountName: "reader",
			EventDriven: ptr.To(true), Interval: metav1.Duration{Duration: time.Hour}}})

	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr + "/metrics"
	run(t, env.Config, operator.Options{MetricsAddr: addr, MetricsSecure: false, ProbeAddr: "0", Namespace: tenant,
		AccessRecheckPeriod: recheck, StatusInterval: time.Second})

	waitReason(t, plain, v1alpha1.ReasonReady)
	waitValue(t, url, "owned_plain", 1)
	waitReason(t, named, v1alpha1.ReasonForbidden)
	if c := waitReason(t, everywhere, v1alpha1.ReasonForbidden); !strings.Contains(c.Message, "cluster-wide") {
		t.Errorf("message %q should say the metric needs access cluster-wide", c.Message)
	}

	bindReader(t, target, "reader", "reader", tenant)
	waitReason(t, named, v1alpha1.ReasonReady)
	waitValue(t, url, "owned_named", 1)
	// A RoleBinding in one namespace is no access to all of them: still
	// Forbidden after the re-checks that made the other metric Ready.
	time.Sleep(2 * recheck)
	waitReason(t, everywhere, v1alpha1.ReasonForbidden)
	waitValue(t, url, "owned_plain", 1)
}

// TestCrossNamespaceReferences checks --no-cross-namespace-refs: a
// remoteClusterAccessRef to another namespace is refused with its own
// reason, one in the metric's own namespace is not, and a metric without
// dataSinkRef still pushes to the default DataSink in the operator's
// namespace. Without the flag the same reference passes the check.
func TestCrossNamespaceReferences(t *testing.T) {
	testenv.Require(t, env)
	sink := otlpsink.Start(t)
	tenant, other, opNS := "xref-a", "xref-other", "xref-operator"
	for _, ns := range []string{tenant, other, opNS} {
		mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	deleteMetricsAtEnd(t, tenant)
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "counted", Namespace: tenant}})
	mustCreate(t, &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: opNS},
		Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: sink.HTTPURL()}}})
	elsewhere := client.ObjectKey{Namespace: tenant, Name: "remote-elsewhere"}
	here := client.ObjectKey{Namespace: tenant, Name: "remote-here"}
	local := client.ObjectKey{Namespace: tenant, Name: "local"}
	for key, ref := range map[client.ObjectKey]*v1alpha1.NamespacedReference{
		elsewhere: {Name: "cluster", Namespace: other},
		here:      {Name: "cluster", Namespace: tenant},
		local:     nil,
	} {
		mustCreate(t, &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace},
			Spec: v1alpha1.MetricSpec{Name: "xref_" + strings.ReplaceAll(key.Name, "-", "_"), Target: configMaps,
				Namespace: tenant, RemoteClusterAccessRef: ref, Interval: metav1.Duration{Duration: 10 * time.Second}}})
	}
	managedElsewhere := &v1alpha1.ManagedMetric{ObjectMeta: metav1.ObjectMeta{Name: "managed-elsewhere", Namespace: tenant},
		Spec: v1alpha1.ManagedMetricSpec{EventDriven: ptr.To(true), Interval: metav1.Duration{Duration: time.Minute},
			RemoteClusterAccessRef: &v1alpha1.NamespacedReference{Name: "cluster", Namespace: other}}}
	mustCreate(t, managedElsewhere)
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), managedElsewhere) })

	for _, tc := range []struct {
		flag          bool
		elsewhereWant string
	}{
		{true, v1alpha1.ReasonCrossNamespaceReference},
		{false, v1alpha1.ReasonClusterUnreachable},
	} {
		t.Run(fmt.Sprintf("no-cross-namespace-refs=%t", tc.flag), func(t *testing.T) {
			run(t, env.Config, operator.Options{MetricsAddr: "0", ProbeAddr: "0", Namespace: opNS,
				NoCrossNamespaceRefs: tc.flag, MinExportInterval: time.Second, StatusInterval: time.Second})
			c := waitReason(t, elsewhere, tc.elsewhereWant)
			t.Logf("%s: %s", c.Reason, c.Message)
			if tc.flag && (!strings.Contains(c.Message, "spec.remoteClusterAccessRef.namespace") ||
				!strings.Contains(c.Message, "--no-cross-namespace-refs")) {
				t.Errorf("message %q should name the field and the flag", c.Message)
			}
			// A ManagedMetric's reference is refused alike.
			testenv.Eventually(t, 60*time.Second, func() error {
				if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(managedElsewhere), managedElsewhere); err != nil {
					return err
				}
				c := meta.FindStatusCondition(managedElsewhere.Status.Conditions, v1alpha1.ConditionReady)
				if c == nil || c.Reason != tc.elsewhereWant {
					return fmt.Errorf("ManagedMetric: Ready condition %+v, want reason %s", c, tc.elsewhereWant)
				}
				return nil
			})
			// No such RemoteClusterAccess, but not refused as a cross-namespace reference.
			waitReason(t, here, v1alpha1.ReasonClusterUnreachable)
			waitReason(t, local, v1alpha1.ReasonReady)
			if tc.flag {
				testenv.Eventually(t, 60*time.Second, func() error {
					if _, ok := sink.Latest("xref_local"); !ok {
						ds := &v1alpha1.DataSink{}
						_ = env.Client.Get(t.Context(), client.ObjectKey{Namespace: opNS, Name: "default"}, ds)
						m := &v1alpha1.Metric{}
						_ = env.Client.Get(t.Context(), local, m)
						return fmt.Errorf("no push of xref_local to the default DataSink of %s (%d batches received; sink %+v; metric %+v)",
							opNS, sink.Count(), ds.Status.Conditions, m.Status.Conditions)
					}
					return nil
				})
			}
		})
	}
}

// bindReader creates a Role and RoleBinding name in ns that let the
// ServiceAccount sa of each tenant namespace list and watch ConfigMaps
// there, and returns the RoleBinding.
func bindReader(t *testing.T, ns, name, sa string, tenants ...string) *rbacv1.RoleBinding {
	t.Helper()
	mustCreate(t, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"list", "watch"}}}})
	b := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name}}
	for _, tenant := range tenants {
		b.Subjects = append(b.Subjects, rbacv1.Subject{Kind: "ServiceAccount", Name: sa, Namespace: tenant})
	}
	mustCreate(t, b)
	return b
}

// waitReason waits until the Metric's Ready condition has reason and its
// status describes the current generation, and returns the condition.
func waitReason(t *testing.T, key client.ObjectKey, reason string) metav1.Condition {
	t.Helper()
	var got metav1.Condition
	testenv.Eventually(t, 60*time.Second, func() error {
		m := &v1alpha1.Metric{}
		if err := env.Client.Get(t.Context(), key, m); err != nil {
			return err
		}
		c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Reason != reason {
			return fmt.Errorf("%s: Ready condition %+v, want reason %s", key, c, reason)
		}
		got = *c
		return nil
	})
	return got
}

// waitValue waits until family has exactly one series on /metrics, with
// value want.
func waitValue(t *testing.T, url, family string, want float64) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, func() error {
		fams, err := scrape.Families(url)
		if err != nil {
			return err
		}
		s := scrape.Samples(fams, family)
		if len(s) != 1 || s[0].Value != want {
			return fmt.Errorf("%s: %v, want one series of value %v", family, scrape.Strings(s), want)
		}
		return nil
	})
}

// watchesIn counts the operator's running watches in namespace ns.
func watchesIn(op *operator.Operator, ns string) int {
	n := 0
	for _, k := range op.Informers.Active() {
		if k.Namespace == ns {
			n++
		}
	}
	return n
}

// deleteMetricsAtEnd deletes the Metrics of namespaces when the test ends,
// so that the operators of later tests do not act on them.
func deleteMetricsAtEnd(t *testing.T, namespaces ...string) {
	t.Helper()
	t.Cleanup(func() {
		for _, ns := range namespaces {
			if err := env.Client.DeleteAllOf(context.Background(), &v1alpha1.Metric{}, client.InNamespace(ns)); err != nil {
				t.Errorf("deleting the Metrics of %s: %v", ns, err)
			}
		}
	})
}
