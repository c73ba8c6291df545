package controllers_test

import (
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

var widgetGVR = schema.GroupVersionResource{Group: "example.metrics.test", Version: "v1", Resource: "widgets"}

func widgetCRD() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "widgets.example.metrics.test"},
		"spec": map[string]any{
			"group": "example.metrics.test",
			"names": map[string]any{"kind": "Widget", "listKind": "WidgetList", "plural": "widgets", "singular": "widget"},
			"scope": "Namespaced",
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
			}},
		},
	}}
}

func widget(ns, name, color string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.metrics.test/v1", "kind": "Widget",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     map[string]any{"color": color},
	}}
}

// installWidgets creates the Widget CRD and waits until it is served.
func installWidgets(t *testing.T, ns string) {
	t.Helper()
	if err := env.Client.Create(t.Context(), widgetCRD()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		// Creating a throwaway object proves the resource is served.
		w := widget(ns, "probe", "none")
		if err := env.Client.Create(t.Context(), w); err != nil {
			return err
		}
		return env.Client.Delete(t.Context(), w)
	})
}

// TestEventDrivenTargetCRDDeletedAndRestored deletes a watched CRD: the
// informer stops, the metric reports TargetNotFound, and when the CRD
// returns the metric recovers by itself.
func TestEventDrivenTargetCRDDeletedAndRestored(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "ed-crd"
	createNamespace(t, ns)
	installWidgets(t, ns)
	create(t, widget(ns, "a", "red"), widget(ns, "b", "blue"))
	m := eventDriven(ns, "widgets", v1alpha1.MetricSpec{
		Name:        "ed_widgets",
		Target:      v1alpha1.GroupVersionKind{Group: "example.metrics.test", Version: "v1", Kind: "Widget"},
		Namespace:   ns,
		Projections: []v1alpha1.Projection{{Name: "color", FieldPath: "spec.color"}},
	})
	create(t, m)
	waitSamplesWithin(t, eventTimeout, "ed_widgets",
		"{cluster=local,color=blue,group=example.metrics.test,kind=Widget,version=v1} 1",
		"{cluster=local,color=red,group=example.metrics.test,kind=Widget,version=v1} 1")
	key := registry.InformerKey{Cluster: "local", GVR: widgetGVR, Namespace: ns}
	if !informerActive(key) {
		t.Fatalf("no informer for widgets: %v", op.Informers.Active())
	}

	if err := env.Client.Delete(ctx, widgetCRD()); err != nil {
		t.Fatal(err)
	}
	conds := func() []metav1.Condition { return m.Status.Conditions }
	waitReadyWithin(t, 60*time.Second, m, conds, metav1.ConditionFalse, v1alpha1.ReasonTargetNotFound)
	testenv.Eventually(t, 30*time.Second, func() error {
		if informerActive(key) {
			return fmt.Errorf("informer for the deleted CRD still runs")
		}
		return nil
	})
	// The metric is in error: its family is withdrawn from /metrics.
	waitFamilyGone(t, eventTimeout, "ed_widgets")

	testenv.Eventually(t, 60*time.Second, func() error {
		err := env.Client.Get(ctx, clientKey("", "widgets.example.metrics.test"), widgetCRD())
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("CRD still terminating: %w", err)
	})
	installWidgets(t, ns)
	create(t, widget(ns, "c", "green"))
	waitReadyWithin(t, 90*time.Second, m, conds, metav1.ConditionTrue, v1alpha1.ReasonReady)
	waitSamplesWithin(t, eventTimeout, "ed_widgets",
		"{cluster=local,color=green,group=example.metrics.test,kind=Widget,version=v1} 1")
}
