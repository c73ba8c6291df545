package operator_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// The operator's identity as config/ installs it.
const (
	operatorNamespace = "metrics-operator-system"
	operatorSA        = "system:serviceaccount:" + operatorNamespace + ":metrics-operator"
	targetsRole       = "metrics-operator-targets"
)

// TestInstalledRBACIsLeastPrivilege installs the RBAC of config/default
// (rendered with kubectl's kustomize, exactly what `kubectl apply -k`
// applies) and asks the API server, with `kubectl auth can-i --as`, what
// the operator's ServiceAccount may do. Then it runs the operator as that
// ServiceAccount: a Metric on a kind outside the default rules reports
// Forbidden naming the verb, the resource and the aggregation label, and
// becomes Ready once the ClusterRole of config/samples/rbac_read_widgets.yaml
// (the README's snippet) is applied.
//
// kube-controller-manager, which keeps aggregated ClusterRoles filled,
// does not run under envtest, and kube-apiserver alone does not aggregate
// (the test logs the rule count it finds). So the test checks the
// aggregation rule in two steps: the selector of the installed aggregate
// matches exactly the labelled ClusterRoles, and after writing the union of
// their rules into the aggregate, which is what the controller does, the
// answers are the expected ones.
func TestInstalledRBACIsLeastPrivilege(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	applyInstalledRBAC(t)

	installed := &rbacv1.ClusterRole{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: targetsRole}, installed); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s holds %d rules as installed (kube-apiserver alone does not aggregate)", targetsRole, len(installed.Rules))
	if got := aggregatedRoles(t, installed); !slices.Equal(got, []string{"metrics-operator-targets-default"}) {
		t.Fatalf("the aggregation rule selects %v, want exactly metrics-operator-targets-default", got)
	}
	checkDefaultRulesAreReadOnly(t)
	aggregate(t)

	kubeconfig, err := env.WriteAdminKubeconfig(t.TempDir(), "rbac-checker")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		args []string // kubectl auth can-i ...
		want bool
	}{
		{[]string{"list", "pods", "-A"}, true},
		{[]string{"watch", "pods", "-A"}, true},
		{[]string{"list", "configmaps", "-A"}, true},
		{[]string{"list", "deployments.apps", "-A"}, true},
		{[]string{"watch", "deployments.apps", "-n", "default"}, true},
		{[]string{"list", "nodes"}, true},
		{[]string{"list", "jobs.batch", "-A"}, true},
		{[]string{"list", "metrics.metrics.cloud.sap", "-A"}, true},
		{[]string{"get", "nodes", "--subresource=proxy"}, false},
		{[]string{"create", "nodes", "--subresource=proxy"}, false},
		{[]string{"get", "pods", "--subresource=log", "-n", "default"}, false},
		{[]string{"create", "pods", "--subresource=exec", "-n", "default"}, false},
		{[]string{"get", "services", "--subresource=proxy", "-n", "default"}, false},
		{[]string{"create", "serviceaccounts", "--subresource=token", "-n", "default"}, false},
		// Secrets: get only, because a DataSink names the Secrets it needs
		// and the operator reads exactly those, in any namespace that holds
		// DataSinks. Listing or watching would expose every Secret.
		{[]string{"list", "secrets", "-A"}, false},
		{[]string{"list", "secrets", "-n", "default"}, false},
		{[]string{"watch", "secrets", "-A"}, false},
		{[]string{"get", "secrets", "-n", "default"}, true},
		{[]string{"create", "configmaps", "-n", "default"}, false},
		{[]string{"delete", "pods", "-n", "default"}, false},
		{[]string{"update", "deployments.apps", "-n", "default"}, false},
		{[]string{"list", "widgets.example.com", "-A"}, false},
		{[]string{"list", "roles.rbac.authorization.k8s.io", "-A"}, false},
	}
	canI := func(args []string) bool {
		t.Helper()
		cmd := exec.Command(env.KubectlPath, append([]string{"--kubeconfig", kubeconfig, "auth", "can-i", "--as", operatorSA}, args...)...)
		out, err := cmd.Output()
		answer := strings.TrimSpace(string(out))
		var exit *exec.ExitError
		switch {
		case err == nil && answer == "yes":
			return true
		case errors.As(err, &exit) && answer == "no":
			return false
		}
		t.Fatalf("kubectl auth can-i %v: %q, %v", args, answer, err)
		return false
	}
	for _, c := range checks {
		if got := canI(c.args); got != c.want {
			t.Errorf("kubectl auth can-i %s --as %s: %v, want %v", strings.Join(c.args, " "), operatorSA, got, c.want)
		}
	}

	// The operator itself, as that ServiceAccount.
	ns := "rbac"
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	installCRD(t, widgetsCRD)
	for _, name := range []string{"a", "b"} {
		mustCreate(t, widgetObject(ns, name))
	}
	widgets := v1alpha1.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}
	configMaps := v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	metrics := []*v1alpha1.Metric{
		{ObjectMeta: metav1.ObjectMeta{Name: "widgets-polling", Namespace: ns},
			Spec: v1alpha1.MetricSpec{Name: "rbac_widgets_polling", Target: widgets, Namespace: ns, Interval: metav1.Duration{Duration: 10 * time.Second}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "widgets-events", Namespace: ns},
			Spec: v1alpha1.MetricSpec{Name: "rbac_widgets_events", Target: widgets, Namespace: ns, EventDriven: ptr.To(true), Interval: metav1.Duration{Duration: time.Hour}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "configmaps", Namespace: ns},
			Spec: v1alpha1.MetricSpec{Name: "rbac_configmaps", Target: configMaps, Namespace: ns, EventDriven: ptr.To(true), Interval: metav1.Duration{Duration: time.Hour}}},
	}
	for _, m := range metrics {
		mustCreate(t, m)
	}
	sa, err := env.AddUser(envtest.User{Name: operatorSA,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + operatorNamespace}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, sa.Config(), operator.Options{MetricsAddr: "0", ProbeAddr: "0", Namespace: ns,
		MinExportInterval: time.Second, StatusInterval: time.Second})

	for _, name := range []string{"widgets-polling", "widgets-events"} {
		c := waitMetricReason(t, ns, name, v1alpha1.ReasonForbidden, 60*time.Second)
		for _, want := range []string{"list", "widgets.example.com", v1alpha1.AggregateToOperatorLabel} {
			if !strings.Contains(c.Message, want) {
				t.Errorf("%s: Forbidden message %q does not name %q", name, c.Message, want)
			}
		}
	}
	waitMetricReason(t, ns, "configmaps", v1alpha1.ReasonReady, 60*time.Second)

	// The README's three lines for a CRD.
	if out, err := exec.Command(env.KubectlPath, "--kubeconfig", kubeconfig, "apply", "-f",
		filepath.Join(testenv.RepoRoot(), "config", "samples", "rbac_read_widgets.yaml")).CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	if got := aggregatedRoles(t, installed); !slices.Contains(got, "metrics-operator-read-widgets") {
		t.Fatalf("the aggregation rule does not select the new ClusterRole: %v", got)
	}
	aggregate(t)
	if !canI([]string{"list", "widgets.example.com", "-A"}) {
		t.Fatal("the labelled ClusterRole did not grant list on widgets")
	}
	// A forbidden watch is retried every 15 s, a polling metric every interval.
	for _, name := range []string{"widgets-polling", "widgets-events"} {
		waitMetricReason(t, ns, name, v1alpha1.ReasonReady, 90*time.Second)
	}
	waitMetricReason(t, ns, "configmaps", v1alpha1.ReasonReady, 10*time.Second)
	testenv.Eventually(t, 30*time.Second, func() error {
		m := &v1alpha1.Metric{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "widgets-events"}, m); err != nil {
			return err
		}
		if got := m.Status.Observation.LatestValue; got != "2" {
			return fmt.Errorf("widgets-events observes %q widgets, want 2", got)
		}
		return nil
	})
}

// applyInstalledRBAC creates the ServiceAccount, namespace and RBAC objects
// of config/default in the test's API server.
func applyInstalledRBAC(t *testing.T) {
	t.Helper()
	built, err := exec.Command(env.KubectlPath, "kustomize", filepath.Join(testenv.RepoRoot(), "config", "default")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v", err)
	}
	kinds := map[string]bool{"Namespace": true, "ServiceAccount": true, "ClusterRole": true,
		"ClusterRoleBinding": true, "Role": true, "RoleBinding": true}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(built), 4096)
	applied := 0
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if !kinds[u.GetKind()] {
			continue
		}
		mustCreate(t, u)
		applied++
	}
	t.Logf("applied %d RBAC objects of config/default", applied)
}

// aggregatedRoles lists the ClusterRoles the aggregation rule of role
// selects, by name.
func aggregatedRoles(t *testing.T, role *rbacv1.ClusterRole) []string {
	t.Helper()
	var all rbacv1.ClusterRoleList
	if err := env.Client.List(t.Context(), &all); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sel := range role.AggregationRule.ClusterRoleSelectors {
		s, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range all.Items {
			if r.Name != role.Name && s.Matches(labels.Set(r.Labels)) && !slices.Contains(names, r.Name) {
				names = append(names, r.Name)
			}
		}
	}
	slices.Sort(names)
	return names
}

// aggregate fills every aggregated ClusterRole with the union of the rules
// of the ClusterRoles it selects: the job of kube-controller-manager's
// clusterrole-aggregation controller, which envtest does not run.
func aggregate(t *testing.T) {
	t.Helper()
	var all rbacv1.ClusterRoleList
	if err := env.Client.List(t.Context(), &all); err != nil {
		t.Fatal(err)
	}
	for i := range all.Items {
		role := &all.Items[i]
		if role.AggregationRule == nil || !strings.HasPrefix(role.Name, "metrics-operator") {
			continue
		}
		var rules []rbacv1.PolicyRule
		for _, name := range aggregatedRoles(t, role) {
			src := &rbacv1.ClusterRole{}
			if err := env.Client.Get(t.Context(), client.ObjectKey{Name: name}, src); err != nil {
				t.Fatal(err)
			}
			for _, r := range src.Rules {
				if !slices.ContainsFunc(rules, func(have rbacv1.PolicyRule) bool { return equality.Semantic.DeepEqual(have, r) }) {
					rules = append(rules, r)
				}
			}
		}
		role.Rules = rules
		if err := env.Client.Update(t.Context(), role); err != nil {
			t.Fatal(err)
		}
	}
}

// checkDefaultRulesAreReadOnly reads the installed default rules: read
// verbs only, named resources only (no wildcard, which would include
// subresources), no subresources, no Secrets.
func checkDefaultRulesAreReadOnly(t *testing.T) {
	t.Helper()
	role := &rbacv1.ClusterRole{}
	if err := env.Client.Get(t.Context(), client.ObjectKey{Name: "metrics-operator-targets-default"}, role); err != nil {
		t.Fatal(err)
	}
	for _, r := range role.Rules {
		for _, v := range r.Verbs {
			if v != "get" && v != "list" && v != "watch" {
				t.Errorf("default rule %v grants %q", r, v)
			}
		}
		for _, res := range r.Resources {
			if strings.Contains(res, "/") || strings.Contains(res, "*") || res == "secrets" {
				t.Errorf("default rule %v names %q", r, res)
			}
		}
		if slices.Contains(r.APIGroups, "*") {
			t.Errorf("default rule %v covers every API group", r)
		}
	}
}

// waitMetricReason waits for the Metric's Ready reason and returns the
// condition.
func waitMetricReason(t *testing.T, ns, name, reason string, timeout time.Duration) metav1.Condition {
	t.Helper()
	var got metav1.Condition
	testenv.Eventually(t, timeout, func() error {
		m := &v1alpha1.Metric{}
		if err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, m); err != nil {
			return err
		}
		c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Reason != reason {
			return fmt.Errorf("%s: Ready condition %+v, want reason %s", name, c, reason)
		}
		got = *c
		return nil
	})
	t.Logf("%s: %s: %s", name, got.Reason, got.Message)
	return got
}

// widgetsCRD is the CRD config/samples/rbac_read_widgets.yaml grants.
const widgetsCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`

func widgetObject(ns, name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": name, "namespace": ns},
	}}
}

// installCRD creates the CRD in manifest and waits until it is served.
func installCRD(t *testing.T, manifest string) {
	t.Helper()
	crd := &unstructured.Unstructured{}
	if err := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096).Decode(&crd.Object); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, crd)
	testenv.Eventually(t, 30*time.Second, func() error {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(crd.GroupVersionKind())
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(crd), got); err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conds {
			if c, ok := c.(map[string]any); ok && c["type"] == "Established" && c["status"] == "True" {
				return nil
			}
		}
		return errors.New("CRD not established yet")
	})
}
