package controllers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

func createNamespace(t *testing.T, name string) {
	t.Helper()
	if err := env.Client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
}

// waitReady waits for obj's Ready condition to have status and reason,
// for the current generation.
func waitReady(t *testing.T, obj client.Object, conds func() []metav1.Condition, status metav1.ConditionStatus, reason string) {
	t.Helper()
	waitReadyWithin(t, 10*time.Second, obj, conds, status, reason)
}

func clientKey(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

func waitReadyWithin(t *testing.T, timeout time.Duration, obj client.Object, conds func() []metav1.Condition,
	status metav1.ConditionStatus, reason string) {
	t.Helper()
	testenv.Eventually(t, timeout, func() error {
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		c := meta.FindStatusCondition(conds(), v1alpha1.ConditionReady)
		switch {
		case c == nil:
			return fmt.Errorf("no Ready condition yet")
		case c.Status != status || c.Reason != reason:
			return fmt.Errorf("Ready=%s/%s (%s), want %s/%s", c.Status, c.Reason, c.Message, status, reason)
		case c.ObservedGeneration != obj.GetGeneration():
			return fmt.Errorf("condition is for generation %d, object has %d", c.ObservedGeneration, obj.GetGeneration())
		}
		return nil
	})
}

func TestDataSinkReadyFollowsItsSecret(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "datasink-secret"
	createNamespace(t, ns)

	ds := &v1alpha1.DataSink{
		ObjectMeta: metav1.ObjectMeta{Name: "sink", Namespace: ns},
		Spec: v1alpha1.DataSinkSpec{
			Connection: v1alpha1.Connection{Endpoint: "https://collector.example:4318/api/v2/otlp/v1/metrics"},
			Authentication: &v1alpha1.Authentication{APIKey: &v1alpha1.APIKeyAuthentication{
				SecretKeyRef: v1alpha1.SecretKeySelector{Name: "sink-token", Key: "token"},
			}},
		},
	}
	if err := env.Client.Create(ctx, ds); err != nil {
		t.Fatal(err)
	}
	conds := func() []metav1.Condition { return ds.Status.Conditions }
	key := types.NamespacedName{Namespace: ns, Name: "sink"}

	// No Secret yet.
	waitReady(t, ds, conds, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound)

	// The Secret appears, but without the key.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sink-token", Namespace: ns},
		Data: map[string][]byte{"other": []byte("x")}}
	if err := env.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ds, conds, metav1.ConditionFalse, v1alpha1.ReasonSecretKeyMissing)

	// The key is added: ready, and the exporters see the header.
	secret.Data["token"] = []byte("first-token")
	if err := env.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ds, conds, metav1.ConditionTrue, v1alpha1.ReasonReady)
	target, err, _ := op.Sinks.Get(key)
	if err != nil || target.Headers["Authorization"] != "Api-Token first-token" {
		t.Fatalf("store holds %+v, %v; want the first token", target, err)
	}
	if ds.Status.Protocol != "http" {
		t.Errorf("status.protocol = %q, want http", ds.Status.Protocol)
	}

	// The token rotates: the Target changes, so exporters are rebuilt.
	first := target.Fingerprint
	secret.Data["token"] = []byte("second-token")
	if err := env.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		target, _, _ := op.Sinks.Get(key)
		if target == nil || target.Fingerprint == first {
			return fmt.Errorf("fingerprint did not change after the token rotated")
		}
		if target.Headers["Authorization"] != "Api-Token second-token" {
			return fmt.Errorf("header not updated")
		}
		return nil
	})

	// The Secret disappears.
	if err := env.Client.Delete(ctx, secret); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ds, conds, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound)
	for _, c := range ds.Status.Conditions {
		if strings.Contains(c.Message, "second-token") {
			t.Fatalf("condition leaks secret material: %q", c.Message)
		}
	}

	// The DataSink is deleted: the exporters forget it.
	if err := env.Client.Delete(ctx, ds); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if _, _, found := op.Sinks.Get(key); found {
			return fmt.Errorf("store still holds the deleted DataSink")
		}
		return nil
	})
}

func TestDataSinkConfigurationErrors(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "datasink-errors"
	createNamespace(t, ns)
	if err := env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "junk", Namespace: ns},
		Data: map[string][]byte{"crt": []byte("not a certificate"), "key": []byte("not a key")}}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		spec   v1alpha1.DataSinkSpec
		reason string
	}{
		{"grpc-with-path", v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: "grpc://collector:4317/v1/metrics"}},
			v1alpha1.ReasonInvalidEndpoint},
		{"bad-certificate", v1alpha1.DataSinkSpec{
			Connection: v1alpha1.Connection{Endpoint: "grpcs://collector:4317"},
			Authentication: &v1alpha1.Authentication{Certificate: &v1alpha1.CertificateAuthentication{
				ClientCertSecretKeyRef: v1alpha1.SecretKeySelector{Name: "junk", Key: "crt"},
				ClientKeySecretKeyRef:  v1alpha1.SecretKeySelector{Name: "junk", Key: "key"},
			}}}, v1alpha1.ReasonInvalidCertificate},
		{"plain-grpc", v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: "grpc://collector:4317"}},
			v1alpha1.ReasonReady},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ds := &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: tc.name, Namespace: ns}, Spec: tc.spec}
			if err := env.Client.Create(ctx, ds); err != nil {
				t.Fatal(err)
			}
			status := metav1.ConditionFalse
			if tc.reason == v1alpha1.ReasonReady {
				status = metav1.ConditionTrue
			}
			waitReady(t, ds, func() []metav1.Condition { return ds.Status.Conditions }, status, tc.reason)
		})
	}
}
