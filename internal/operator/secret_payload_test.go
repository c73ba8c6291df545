package operator_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestSecretPayloadNeverLeaves runs the operator binary with a tenant's
// Metrics in one namespace aimed at a Secret in another, every way the API
// offers to read its payload, in both modes. Each is refused with
// SecretDataForbidden, and the payload, plain or base64, is nowhere the
// tenant or anyone else could read it: /metrics, the Metrics' status,
// events, what the DataSink receives, the operator's log. A metric that
// counts the Secrets by metadata works and stays current beside them.
func TestSecretPayloadNeverLeaves(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	tenant, owner := "secret-tenant", "secret-owner"
	const plain = "pl41n-s3cr3t-Value-7781"
	encoded := base64.StdEncoding.EncodeToString([]byte(plain))
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenant}})
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: owner}})
	mustCreate(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: owner, Labels: map[string]string{"app": "db"},
			// What kubectl apply leaves on the object: a copy, payload included.
			Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"password":"` + encoded + `"}}`}},
		Data:       map[string][]byte{"password": []byte(plain), "count": []byte("42")},
		StringData: map[string]string{"token": plain},
	})
	sink := otlpsink.Start(t)
	mustCreate(t, &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: tenant},
		Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: sink.HTTPURL()}}})
	p := startProcess(t, tenant)

	secret := v1alpha1.GroupVersionKind{Version: "v1", Kind: "Secret"}
	metric := func(name string, eventDriven bool, spec v1alpha1.MetricSpec) *v1alpha1.Metric {
		spec.Target, spec.Namespace = secret, owner
		spec.EventDriven = ptr.To(eventDriven)
		spec.Interval = metav1.Duration{Duration: 10 * time.Second}
		return &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: tenant}, Spec: spec}
	}
	var refused []*v1alpha1.Metric
	for _, eventDriven := range []bool{false, true} {
		mode := map[bool]string{false: "polling", true: "events"}[eventDriven]
		refused = append(refused,
			metric(mode+"-data", eventDriven, v1alpha1.MetricSpec{
				Projections: []v1alpha1.Projection{{Name: "password", FieldPath: "data.password"}}}),
			metric(mode+"-value", eventDriven, v1alpha1.MetricSpec{
				ValueFrom: &v1alpha1.ValueFrom{FieldPath: "data.password"}}),
			metric(mode+"-count-value", eventDriven, v1alpha1.MetricSpec{
				ValueFrom: &v1alpha1.ValueFrom{FieldPath: "{.data.count}"}}),
			metric(mode+"-whole", eventDriven, v1alpha1.MetricSpec{
				Projections: []v1alpha1.Projection{{Name: "all", FieldPath: ".", Type: v1alpha1.ProjectionMap}}}),
			metric(mode+"-descent", eventDriven, v1alpha1.MetricSpec{
				Projections: []v1alpha1.Projection{{Name: "pw", FieldPath: "..password"}}}),
			metric(mode+"-annotations", eventDriven, v1alpha1.MetricSpec{
				Projections: []v1alpha1.Projection{{Name: "a", FieldPath: "metadata.annotations", Type: v1alpha1.ProjectionMap}}}),
			metric(mode+"-selector", eventDriven, v1alpha1.MetricSpec{FieldSelector: "data.password=guess"}),
		)
	}
	for _, m := range refused {
		mustCreate(t, m)
	}
	counted := metric("by-type", true, v1alpha1.MetricSpec{Name: "tenant_secrets",
		Projections: []v1alpha1.Projection{{Name: "type", FieldPath: "type"}, {Name: "app", FieldPath: "metadata.labels.app", Default: jsonString("none")}}})
	mustCreate(t, counted)

	for _, m := range refused {
		waitCondition(t, m, metav1.ConditionFalse, v1alpha1.ReasonSecretDataForbidden)
	}
	t.Logf("SecretDataForbidden: %s", meta.FindStatusCondition(refused[0].Status.Conditions, v1alpha1.ConditionReady).Message)

	// Metadata stays countable, on /metrics and over OTLP, and current.
	waitFamily(t, p.metricsURL, "tenant_secrets", "{app=db,cluster=local,kind=Secret,type=Opaque,version=v1} 1")
	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: owner}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": []byte(plain), "tls.key": []byte(plain)}})
	waitFamily(t, p.metricsURL, "tenant_secrets",
		"{app=db,cluster=local,kind=Secret,type=Opaque,version=v1} 1", "{app=none,cluster=local,kind=Secret,type=kubernetes.io/tls,version=v1} 1")
	testenv.Eventually(t, 30*time.Second, func() error {
		if pts := sink.LatestPoints("tenant_secrets"); len(pts) != 2 {
			return fmt.Errorf("pushed %v, want 2 points", pts)
		}
		return nil
	})
	// Let the polling metrics poll and every status and event be written.
	time.Sleep(12 * time.Second)

	places := map[string][]byte{}
	resp, err := http.Get(p.metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	places["/metrics"], _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()

	var metrics v1alpha1.MetricList
	if err := env.Client.List(ctx, &metrics, client.InNamespace(tenant)); err != nil {
		t.Fatal(err)
	}
	for _, m := range metrics.Items {
		places["status of "+m.Name], _ = json.Marshal(m.Status)
	}
	for _, ns := range []string{tenant, owner, "default"} {
		var events corev1.EventList
		if err := env.Client.List(ctx, &events, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		if ns == tenant && len(events.Items) < len(refused) {
			t.Errorf("%d events in %s, want one per refused metric at least", len(events.Items), ns)
		}
		places["events in "+ns], _ = json.Marshal(events)
	}
	var otlp bytes.Buffer
	for _, b := range sink.Received() {
		js, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(b.Metrics)
		if err != nil {
			t.Fatal(err)
		}
		otlp.Write(js)
	}
	places["OTLP payloads"] = otlp.Bytes()
	places["operator log"] = p.log(t)
	if !bytes.Contains(places["operator log"], []byte("Starting operator")) {
		t.Fatalf("the operator's log was not captured")
	}

	for place, content := range places {
		for _, leak := range []string{plain, encoded} {
			if bytes.Contains(content, []byte(leak)) {
				t.Errorf("%s holds the Secret's payload %q", place, leak)
			}
		}
	}
	// And nothing for the refused metrics is served or pushed.
	fams, err := scrape.Families(p.metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range refused {
		if _, ok := fams[m.MetricName()]; ok {
			t.Errorf("refused metric %s is served", m.Name)
		}
		if _, ok := sink.Latest(m.MetricName()); ok {
			t.Errorf("refused metric %s was pushed", m.Name)
		}
	}
}

func jsonString(s string) *apiextensionsv1.JSON {
	b, _ := json.Marshal(s)
	return &apiextensionsv1.JSON{Raw: b}
}

// waitCondition waits for m's Ready condition to have status and reason
// for its current generation.
func waitCondition(t *testing.T, m *v1alpha1.Metric, status metav1.ConditionStatus, reason string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(m), m); err != nil {
			return err
		}
		c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady)
		switch {
		case c == nil:
			return fmt.Errorf("%s: no Ready condition yet", m.Name)
		case c.Status != status || c.Reason != reason || c.ObservedGeneration != m.Generation:
			return fmt.Errorf("%s: Ready=%s/%s (%s) for generation %d, want %s/%s for %d",
				m.Name, c.Status, c.Reason, c.Message, c.ObservedGeneration, status, reason, m.Generation)
		}
		return nil
	})
}

// waitFamily waits until the endpoint serves exactly want for family.
func waitFamily(t *testing.T, url, family string, want ...string) {
	t.Helper()
	slices.Sort(want)
	testenv.Eventually(t, 30*time.Second, func() error {
		fams, err := scrape.Families(url)
		if err != nil {
			return err
		}
		if got := scrape.Strings(scrape.Samples(fams, family)); !slices.Equal(got, want) {
			return fmt.Errorf("%s = %v, want %v", family, got, want)
		}
		return nil
	})
}
