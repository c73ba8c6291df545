package controllers_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// pollTimeout covers one polling interval (10s, the schema's minimum)
// plus slack for a loaded machine.
const pollTimeout = 25 * time.Second

func newMetric(ns, name string, spec v1alpha1.MetricSpec) *v1alpha1.Metric {
	if spec.Interval.Duration == 0 {
		spec.Interval = metav1.Duration{Duration: 10 * time.Second}
	}
	return &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := env.Client.Create(t.Context(), o); err != nil {
			t.Fatalf("creating %s: %v", o.GetName(), err)
		}
	}
}

// waitSamples waits until /metrics shows exactly want for family, within
// one polling interval.
func waitSamples(t *testing.T, family string, want ...string) {
	t.Helper()
	waitSamplesWithin(t, pollTimeout, family, want...)
}

func configMap(ns, name string, labels map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}}
}

func pod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

// setPodStatus writes a pod's status as a kubelet would.
func setPodStatus(t *testing.T, p *corev1.Pod, phase corev1.PodPhase, ready corev1.ConditionStatus) {
	t.Helper()
	p.Status.Phase = phase
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}
	if err := env.Client.Status().Update(t.Context(), p); err != nil {
		t.Fatal(err)
	}
}

func TestMetricPodsByPhaseAndReadyCondition(t *testing.T) {
	testenv.Require(t, env)
	ns := "metric-pods"
	createNamespace(t, ns)
	pods := []*corev1.Pod{pod(ns, "a"), pod(ns, "b"), pod(ns, "c")}
	for _, p := range pods {
		create(t, p)
	}
	setPodStatus(t, pods[0], corev1.PodRunning, corev1.ConditionTrue)
	setPodStatus(t, pods[1], corev1.PodRunning, corev1.ConditionFalse)
	setPodStatus(t, pods[2], corev1.PodPending, corev1.ConditionFalse)

	create(t,
		newMetric(ns, "by-phase", v1alpha1.MetricSpec{
			Name:        "pods_by_phase",
			Target:      v1alpha1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Namespace:   ns,
			Projections: []v1alpha1.Projection{{Name: "phase", FieldPath: "status.phase"}},
		}),
		newMetric(ns, "by-ready", v1alpha1.MetricSpec{
			Name:   "pods.by.ready", // dots are sanitised to underscores
			Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Projections: []v1alpha1.Projection{{Name: "ready", FieldPath: "status.conditions[?(@.type=='Ready')].status"},
				{Name: "k8s.namespace", FieldPath: "metadata.namespace"}},
			FieldSelector: "metadata.namespace=" + ns,
		}))

	waitSamples(t, "pods_by_phase",
		"{cluster=local,kind=Pod,phase=Pending,version=v1} 1",
		"{cluster=local,kind=Pod,phase=Running,version=v1} 2")
	waitSamples(t, "pods_by_ready",
		"{cluster=local,k8s_namespace=metric-pods,kind=Pod,ready=False,version=v1} 2",
		"{cluster=local,k8s_namespace=metric-pods,kind=Pod,ready=True,version=v1} 1")

	m := &v1alpha1.Metric{}
	testenv.Eventually(t, pollTimeout, func() error {
		if err := env.Client.Get(t.Context(), key(ns, "by-phase"), m); err != nil {
			return err
		}
		if m.Status.Ready != "True" || m.Status.Observation.LatestValue != "3" || m.Status.ObservedGeneration != m.Generation {
			return fmt.Errorf("status = %+v", m.Status)
		}
		return nil
	})
	if m.Status.Mode != v1alpha1.ModePolling || m.Status.Observation.Series != 2 {
		t.Errorf("status = %+v, want mode Polling and 2 series", m.Status)
	}

	// Deleting the Metric removes its family.
	if err := env.Client.Delete(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	waitSamples(t, "pods_by_phase")
}

func TestMetricDeploymentCreationTimestampMaxPerNamespace(t *testing.T) {
	testenv.Require(t, env)
	want := map[string]int64{}
	for _, ns := range []string{"deploy-a", "deploy-b"} {
		createNamespace(t, ns)
		for i := range 2 {
			d := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: "d" + strconv.Itoa(i), Namespace: ns, Labels: map[string]string{"suite": "deploy"}},
				Spec: appsv1.DeploymentSpec{
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
						Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
					},
				},
			}
			create(t, d)
			want[ns] = max(want[ns], d.CreationTimestamp.Unix())
			if i == 0 {
				time.Sleep(1100 * time.Millisecond) // creation timestamps have second resolution
			}
		}
	}
	create(t, newMetric("default", "deploy-age", v1alpha1.MetricSpec{
		Name:          "deployment_newest_creation",
		Target:        v1alpha1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
		LabelSelector: "suite=deploy",
		Projections:   []v1alpha1.Projection{{Name: "namespace", FieldPath: "metadata.namespace"}},
		ValueFrom: &v1alpha1.ValueFrom{FieldPath: "metadata.creationTimestamp",
			Type: v1alpha1.ValueTimestamp, Aggregation: v1alpha1.AggregationMax},
	}))
	waitSamples(t, "deployment_newest_creation",
		fmt.Sprintf("{cluster=local,group=apps,kind=Deployment,namespace=deploy-a,version=v1} %d", want["deploy-a"]),
		fmt.Sprintf("{cluster=local,group=apps,kind=Deployment,namespace=deploy-b,version=v1} %d", want["deploy-b"]))
}

func TestMetricLabelDefaultAndSelectorMoves(t *testing.T) {
	testenv.Require(t, env)
	ns := "metric-cms"
	createNamespace(t, ns)
	a := configMap(ns, "a", map[string]string{"sel": "yes", "team": "red"})
	b := configMap(ns, "b", map[string]string{"sel": "yes", "team": "blue"})
	c := configMap(ns, "c", map[string]string{"sel": "yes"})
	create(t, a, b, c)
	create(t, newMetric(ns, "teams", v1alpha1.MetricSpec{
		Target:        v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
		Namespace:     ns,
		LabelSelector: "sel=yes",
		Projections: []v1alpha1.Projection{{Name: "team", FieldPath: "metadata.labels.team",
			Default: &apiextensionsv1.JSON{Raw: []byte(`"none"`)}}},
	}))
	waitSamples(t, "teams",
		"{cluster=local,kind=ConfigMap,team=blue,version=v1} 1",
		"{cluster=local,kind=ConfigMap,team=none,version=v1} 1",
		"{cluster=local,kind=ConfigMap,team=red,version=v1} 1")

	// b leaves the selector: its series goes, it does not linger as 1 or 0.
	b.Labels["sel"] = "no"
	if err := env.Client.Update(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	// a joins red's team mate: two objects in one series.
	c.Labels["team"] = "red"
	if err := env.Client.Update(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	waitSamples(t, "teams", "{cluster=local,kind=ConfigMap,team=red,version=v1} 2")
}

func TestMetricDataSinkMissingThenInvalid(t *testing.T) {
	testenv.Require(t, env)
	ns := "metric-sink-missing"
	createNamespace(t, ns)
	m := newMetric(ns, "pushes", v1alpha1.MetricSpec{
		Target:      v1alpha1.GroupVersionKind{Version: "v1", Kind: "Namespace"},
		DataSinkRef: &v1alpha1.DataSinkReference{Name: "nowhere"},
	})
	create(t, m)
	conds := func() []metav1.Condition { return m.Status.Conditions }
	waitReady(t, m, conds, metav1.ConditionFalse, v1alpha1.ReasonDataSinkNotFound)

	// The sink appears but its Secret does not exist: the metric says so.
	create(t, &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "nowhere", Namespace: ns},
		Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: "http://127.0.0.1:1/v1/metrics"},
			Authentication: &v1alpha1.Authentication{APIKey: &v1alpha1.APIKeyAuthentication{
				SecretKeyRef: v1alpha1.SecretKeySelector{Name: "token", Key: "token"}}}}})
	waitReady(t, m, conds, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound)

	// With the Secret the push is tried, and port 1 refuses it.
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "token", Namespace: ns},
		Data: map[string][]byte{"token": []byte("s3cret")}})
	waitReady(t, m, conds, metav1.ConditionFalse, v1alpha1.ReasonExportFailed)
	if c := findReady(m); c != nil && strings.Contains(c.Message, "s3cret") {
		t.Fatalf("condition leaks the API key: %q", c.Message)
	}
	// The metric is still served on /metrics meanwhile.
	fams, err := scrape.Families(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	if len(scrape.Samples(fams, "pushes")) != 1 {
		t.Errorf("pushes not served on /metrics while its sink fails")
	}
}

func TestMetricSpecErrors(t *testing.T) {
	testenv.Require(t, env)
	ns := "metric-errors"
	createNamespace(t, ns)
	cm := v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	cases := []struct {
		name   string
		spec   v1alpha1.MetricSpec
		reason string
	}{
		{"unknown-kind", v1alpha1.MetricSpec{Target: v1alpha1.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}},
			v1alpha1.ReasonTargetNotFound},
		{"bad-jsonpath", v1alpha1.MetricSpec{Target: cm,
			Projections: []v1alpha1.Projection{{Name: "x", FieldPath: "metadata.labels[?(@.x=="}}},
			v1alpha1.ReasonInvalidProjection},
		{"base-name-clash", v1alpha1.MetricSpec{Target: cm,
			Projections: []v1alpha1.Projection{{Name: "cluster", FieldPath: "metadata.name"}}},
			v1alpha1.ReasonInvalidProjection},
		{"reserved-label", v1alpha1.MetricSpec{Target: cm,
			Projections: []v1alpha1.Projection{{Name: "__name__", FieldPath: "metadata.name"}}},
			v1alpha1.ReasonInvalidProjection},
		{"bad-label-selector", v1alpha1.MetricSpec{Target: cm, LabelSelector: "app in (a"},
			v1alpha1.ReasonInvalidSelector},
		{"bad-field-selector", v1alpha1.MetricSpec{Target: cm, FieldSelector: "status.phase~Running"},
			v1alpha1.ReasonInvalidSelector},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newMetric(ns, tc.name, tc.spec)
			create(t, m)
			waitReady(t, m, func() []metav1.Condition { return m.Status.Conditions }, metav1.ConditionFalse, tc.reason)
			t.Logf("%s: %s", tc.reason, findReady(m).Message)
		})
	}
	// A good metric beside them is unaffected.
	create(t, configMap(ns, "one", nil))
	create(t, newMetric(ns, "good", v1alpha1.MetricSpec{Target: cm, Namespace: ns}))
	waitSamples(t, "good", "{cluster=local,kind=ConfigMap,version=v1} 1")
}

func TestMetricDuplicateNames(t *testing.T) {
	testenv.Require(t, env)
	ns := "metric-dupes"
	createNamespace(t, ns)
	create(t, configMap(ns, "x", nil))
	older := newMetric(ns, "older", v1alpha1.MetricSpec{Name: "dupe_count",
		Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns})
	create(t, older)
	waitSamples(t, "dupe_count", "{cluster=local,kind=ConfigMap,version=v1} 1")
	time.Sleep(1100 * time.Millisecond) // a strictly later creation time
	younger := newMetric(ns, "younger", v1alpha1.MetricSpec{Name: "dupe_count",
		Target:      v1alpha1.GroupVersionKind{Version: "v1", Kind: "Namespace"},
		Projections: []v1alpha1.Projection{{Name: "name", FieldPath: "metadata.name"}}})
	create(t, younger)
	waitReady(t, younger, func() []metav1.Condition { return younger.Status.Conditions },
		metav1.ConditionFalse, v1alpha1.ReasonDuplicateName)
	waitSamples(t, "dupe_count", "{cluster=local,kind=ConfigMap,version=v1} 1")

	// When the owner goes, the younger one takes the name over.
	if err := env.Client.Delete(t.Context(), older); err != nil {
		t.Fatal(err)
	}
	waitReady(t, younger, func() []metav1.Condition { return younger.Status.Conditions },
		metav1.ConditionTrue, v1alpha1.ReasonReady)
}

func findReady(m *v1alpha1.Metric) *metav1.Condition {
	for i := range m.Status.Conditions {
		if m.Status.Conditions[i].Type == v1alpha1.ConditionReady {
			return &m.Status.Conditions[i]
		}
	}
	return nil
}

func key(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}
