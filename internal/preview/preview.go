package preview

import (
	"context"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/controllers"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/targets"
)

// ReasonInvalid is the reason of an object the API server would refuse
// (its schema or a validation rule); the operator never sees such objects.
const ReasonInvalid = "Invalid"

// ReasonValid is the reason of an object that passes the offline checks.
const ReasonValid = "Valid"

// Result is what one metric would be.
type Result struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Metric is the exported family name.
	Metric string `json:"metric,omitempty"`
	// Ready, Reason and Message are the Ready condition the operator would
	// set (validate: the offline part of it).
	Ready   metav1.ConditionStatus `json:"ready"`
	Reason  string                 `json:"reason"`
	Message string                 `json:"message,omitempty"`
	// Labels name the values of each series, in /metrics order.
	Labels []string `json:"labels,omitempty"`
	Series []Series `json:"series,omitempty"`
	// Cost is what evaluating the metric read; nil offline.
	Cost *Cost `json:"cost,omitempty"`
}

// Series is one exported series.
type Series struct {
	Values []string `json:"values"`
	Value  int64    `json:"value"`
}

// Cost is what the metric costs the API server and the operator.
type Cost struct {
	// ObjectsRead is how many objects the LIST returned.
	ObjectsRead int `json:"objectsRead"`
	// ListPages is how many LIST requests a poll makes.
	ListPages int `json:"listPages"`
	// Watch is the shared watch an event-driven metric joins (one per
	// cluster, resource and namespace), and whether it needs only
	// metadata.
	Watch        string `json:"watch"`
	MetadataOnly bool   `json:"metadataOnly"`
}

// OK reports whether the metric would be Ready.
func (r Result) OK() bool { return r.Ready == metav1.ConditionTrue }

// Evaluator checks and evaluates metrics as the operator would.
type Evaluator struct {
	// Guard holds the operator's name checks and limits.
	Guard controllers.Guard
	// ClusterName is the cluster dimension of local objects.
	ClusterName string
	// Namespace is the namespace of objects that name none.
	Namespace string
}

// Decode reads every metric object of a YAML or JSON stream (several
// documents may follow each other); objects of other kinds are skipped.
func Decode(r io.Reader) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []*unstructured.Unstructured
	for {
		obj := map[string]any{}
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("reading the objects: %w", err)
		}
		u := &unstructured.Unstructured{Object: obj}
		if len(obj) == 0 || u.GroupVersionKind().Group != v1alpha1.GroupVersion.Group || !isMetricKind(u.GetKind()) {
			continue
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, errors.New("the input holds no metric (a Metric of metrics.cloud.sap/v1alpha1)")
	}
	return out, nil
}

func isMetricKind(kind string) bool {
	switch kind {
	case "Metric", "ManagedMetric", "FederatedMetric", "FederatedManagedMetric":
		return true
	}
	return false
}

// Validate checks obj without a cluster: the CRD schema with its defaults
// and rules, then the checks the operator makes before it reads anything.
// On success it also returns the typed metric.
func (e *Evaluator) Validate(ctx context.Context, obj *unstructured.Unstructured) (Result, *v1alpha1.Metric) {
	obj = obj.DeepCopy()
	if obj.GetNamespace() == "" {
		obj.SetNamespace(e.Namespace)
	}
	res := Result{Kind: obj.GetKind(), Namespace: obj.GetNamespace(), Name: obj.GetName()}
	if errs := admit(ctx, obj); len(errs) > 0 {
		return res.fail(ReasonInvalid, "the API server would refuse this object: "+errs.ToAggregate().Error()), nil
	}
	if obj.GetKind() != "Metric" {
		res.Ready, res.Reason = metav1.ConditionTrue, ReasonValid
		res.Message = fmt.Sprintf("checked against the %s schema only: this version compiles and previews Metrics", obj.GetKind())
		return res, nil
	}
	m := &v1alpha1.Metric{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, m); err != nil {
		return res.fail(ReasonInvalid, err.Error()), nil
	}
	res.Metric = m.MetricName()
	if _, err := e.Guard.CompileMetric(m); err != nil {
		return res.failWith(err), nil
	}
	res.Ready, res.Reason = metav1.ConditionTrue, ReasonValid
	return res, m
}

// Preview validates obj, then lists its objects through lister and
// evaluates them once. Nothing is written; the cluster sees the same
// LIST a poll of the metric would make.
func (e *Evaluator) Preview(ctx context.Context, lister *targets.Lister, obj *unstructured.Unstructured) (Result, error) {
	res, m := e.Validate(ctx, obj)
	if m == nil {
		if res.OK() {
			return res, fmt.Errorf("%s %s: previewing a %s is not supported yet; validate checks it offline", res.Kind, res.Name, res.Kind)
		}
		return res, nil
	}
	if m.Spec.RemoteClusterAccessRef != nil {
		return res.fail(v1alpha1.ReasonClusterUnreachable,
			"previewing a metric of a remote cluster is not supported yet: point --kubeconfig at that cluster and remove spec.remoteClusterAccessRef"), nil
	}
	mapping, err := lister.Mapping(m.Spec.Target.GVK())
	if err != nil {
		return res.failWith(err), nil
	}
	m.Spec.Target.Kind = mapping.GroupVersionKind.Kind // as the operator's series name it
	key := registry.InformerKey{Cluster: e.ClusterName, GVR: mapping.Resource}
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		key.Namespace = m.Spec.Namespace
	}
	objs, err := lister.List(ctx, mapping, m.Spec.Namespace, m.Spec.LabelSelector)
	if err != nil {
		if !reason.Is(err) {
			return res, err
		}
		return res.failWith(err), nil
	}
	res.Cost = &Cost{ObjectsRead: len(objs), ListPages: max(1, (len(objs)+targets.PageSize-1)/targets.PageSize),
		Watch: describeWatch(key)}
	u, ev, err := e.Guard.EvaluateMetric(m, e.ClusterName, objs)
	if ev != nil {
		res.Cost.MetadataOnly = ev.MetadataOnly()
	}
	if err != nil {
		return res.failWith(err), nil
	}
	res.Ready, res.Reason = metav1.ConditionTrue, v1alpha1.ReasonReady
	res.Message = u.Source.Warning()
	res.Labels = coordinator.LabelNames(&u)
	for _, r := range coordinator.Rows(&u) {
		res.Series = append(res.Series, Series{Values: r.Values, Value: r.Value})
	}
	return res, nil
}

// describeWatch names a shared watch for people: cluster, resource and
// namespace scope.
func describeWatch(k registry.InformerKey) string {
	scope := "all namespaces"
	if k.Namespace != "" {
		scope = "namespace " + k.Namespace
	}
	return fmt.Sprintf("%s in cluster %s, %s", k.GVR.GroupResource(), k.Cluster, scope)
}

func (r Result) fail(why, message string) Result {
	r.Ready, r.Reason, r.Message = metav1.ConditionFalse, why, message
	return r
}

func (r Result) failWith(err error) Result {
	return r.fail(reason.Of(err, ReasonInvalid), err.Error())
}
