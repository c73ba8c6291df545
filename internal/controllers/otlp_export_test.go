package controllers_test

import (
	"fmt"
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/certs"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// waitPoints waits until the receiver's latest push of metric carries
// exactly want (attributes → value).
func waitPoints(t *testing.T, sink *otlpsink.Sink, metric string, want map[string]int64) otlpsink.Metric {
	t.Helper()
	var got otlpsink.Metric
	testenv.Eventually(t, pollTimeout, func() error {
		m, ok := sink.Latest(metric)
		if !ok {
			return fmt.Errorf("no push of %s yet (%d batches)", metric, sink.Count())
		}
		have := map[string]int64{}
		for _, p := range m.Points {
			have[fmt.Sprint(p.Attributes)] = p.Value
		}
		if !maps.Equal(have, want) {
			return fmt.Errorf("%s points = %v, want %v", metric, have, want)
		}
		got = m
		return nil
	})
	return got
}

func pointKey(attrs map[string]string) string { return fmt.Sprint(attrs) }

// TestOTLPExportOverHTTPAndGRPC pushes one metric to a real OpenTelemetry
// Collector receiver over each protocol, with an API key.
func TestOTLPExportOverHTTPAndGRPC(t *testing.T) {
	testenv.Require(t, env)
	sink := otlpsink.Start(t)
	for _, tc := range []struct{ name, endpoint string }{
		{"http", sink.HTTPURL()},
		{"grpc", "grpc://" + sink.GRPCAddr()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := "otlp-" + tc.name
			createNamespace(t, ns)
			create(t,
				&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "key", Namespace: ns},
					Data: map[string][]byte{"token": []byte("token-" + tc.name)}},
				&v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "collector", Namespace: ns},
					Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: tc.endpoint},
						Authentication: &v1alpha1.Authentication{APIKey: &v1alpha1.APIKeyAuthentication{
							SecretKeyRef: v1alpha1.SecretKeySelector{Name: "key", Key: "token"}}}}},
				configMap(ns, "a", map[string]string{"team": "red"}),
				configMap(ns, "b", map[string]string{"team": "red"}),
				configMap(ns, "c", map[string]string{"team": "blue"}),
				newMetric(ns, "teams", v1alpha1.MetricSpec{
					Name:        "otlp." + tc.name + ".configmaps",
					Description: "ConfigMaps per team",
					Target:      v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
					Namespace:   ns,
					Projections: []v1alpha1.Projection{{Name: "team", FieldPath: "metadata.labels.team"}},
					DataSinkRef: &v1alpha1.DataSinkReference{Name: "collector"},
				}))
			base := map[string]string{"version": "v1", "kind": "ConfigMap", "cluster": "local"}
			with := func(team string) string {
				a := maps.Clone(base)
				a["team"] = team
				return pointKey(a)
			}
			m := waitPoints(t, sink, "otlp."+tc.name+".configmaps", map[string]int64{with("red"): 2, with("blue"): 1})
			if m.Type != "Gauge" || m.Description != "ConfigMaps per team" {
				t.Errorf("got a %s with description %q, want a Gauge with the spec's description", m.Type, m.Description)
			}
			if got := m.Headers["authorization"]; len(got) != 1 || got[0] != "Api-Token token-"+tc.name {
				t.Errorf("authorization header = %v, want the API token", got)
			}
			if m.Resource["service.name"] != "metrics-operator" {
				t.Errorf("resource = %v", m.Resource)
			}
		})
	}
}

// TestOTLPExportWithMutualTLS pushes over OTLP/gRPC and OTLP/HTTP to a
// receiver that requires a client certificate, all generated here.
func TestOTLPExportWithMutualTLS(t *testing.T) {
	testenv.Require(t, env)
	set, err := certs.Generate()
	if err != nil {
		t.Fatal(err)
	}
	sink := otlpsink.Start(t, otlpsink.WithTLS(set.Server.CertPEM, set.Server.KeyPEM), otlpsink.WithClientCA(set.CA.CertPEM))
	ns := "otlp-mtls"
	createNamespace(t, ns)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: ns},
		Data: map[string][]byte{"tls.crt": set.Client.CertPEM, "tls.key": set.Client.KeyPEM, "ca.crt": set.CA.CertPEM}})
	auth := &v1alpha1.Authentication{Certificate: &v1alpha1.CertificateAuthentication{
		ClientCertSecretKeyRef: v1alpha1.SecretKeySelector{Name: "client", Key: "tls.crt"},
		ClientKeySecretKeyRef:  v1alpha1.SecretKeySelector{Name: "client", Key: "tls.key"},
		CACertSecretKeyRef:     &v1alpha1.SecretKeySelector{Name: "client", Key: "ca.crt"},
	}}
	for _, tc := range []struct{ name, endpoint string }{
		{"https", sink.HTTPURL()},
		{"grpcs", "grpcs://" + sink.GRPCAddr()},
	} {
		create(t,
			&v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: tc.name, Namespace: ns},
				Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: tc.endpoint}, Authentication: auth}},
			newMetric(ns, tc.name, v1alpha1.MetricSpec{
				Name:          "mtls_" + tc.name + "_namespaces",
				Target:        v1alpha1.GroupVersionKind{Version: "v1", Kind: "Namespace"},
				FieldSelector: "metadata.name=" + ns,
				DataSinkRef:   &v1alpha1.DataSinkReference{Name: tc.name},
			}))
		waitPoints(t, sink, "mtls_"+tc.name+"_namespaces",
			map[string]int64{pointKey(map[string]string{"version": "v1", "kind": "Namespace", "cluster": "local"}): 1})
	}
}
