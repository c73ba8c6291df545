package deploytest

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/remotelimit"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// release is one way of installing the chart.
type release struct {
	name, namespace string
	values          map[string]any
}

// defaultRelease installs with the chart's own values, under the name that
// gives every object the name config/ gives it.
var defaultRelease = release{name: "metrics-operator", namespace: "metrics-operator-system", values: map[string]any{}}

// customRelease sets every value the chart offers away from its default.
var customRelease = release{name: "metrics", namespace: "monitoring", values: mustYAML(`
fullnameOverride: mo
image: {repository: registry.example/metrics-operator, tag: v9.9.9, pullPolicy: Always}
imagePullSecrets: [{name: pull-secret}]
replicaCount: 1
leaderElection: {enabled: false, leaseDuration: 30s, renewDeadline: 20s, retryPeriod: 4s}
sharding: {enabled: true, leaseDuration: 30s, renewInterval: 5s, warmStandby: true}
clusterName: prod-eu
eventDrivenDefault: true
eventNotifyDelay: 50ms
pollingWorkers: 8
kubeAPI: {qps: 20, burst: 40}
tenancy: {defaultServiceAccount: metrics-reader, accessRecheckPeriod: 30s, accessReviewQPS: 5, accessReviewBurst: 10, noCrossNamespaceRefs: true, namePrefixes: {enabled: true}}
limits: {maxSeriesPerMetric: 500, maxLabelValueLength: -1, maxSeriesTotal: 2000000, maxObjectsPerWatch: 200000, maxRemoteResponseBytes: 16777216,
  maxRemoteWatchesPerNamespace: 20, maxRemoteObjectsPerNamespace: 100000}
export: {minInterval: 10s, timeout: 3s, backoffBase: 2s, backoffMax: 1m, statusUpdateInterval: 1m, statusWriteQPS: 7.5, maxPushesPerNamespace: 6}
datasinks: {allowedEndpoints: ["*.live.dynatrace.com", "10.0.0.0/8"], recheckInterval: 2m}
clusters: {allowedEndpoints: ["*.k8s.example.com", "10.20.0.0/16"], backoffMax: 30s, maxReadsPerNamespace: 3}
defaultDataSink:
  enabled: true
  endpoint: https://abc12345.live.dynatrace.com/api/v2/otlp/v1/metrics
  authentication: {apiKey: {secretKeyRef: {name: dynatrace-token, key: token}}}
logLevel: debug
extraArgs: [--pprof-bind-address=:6060]
serviceAccount: {create: true, name: metrics-operator-sa, annotations: {example.com/role: metrics}}
rbac:
  create: true
  defaultTargets: false
  extraTargetRules: [{apiGroups: [example.com], resources: [widgets], verbs: [get, list, watch]}]
metrics: {secure: false, port: 8080, service: {type: ClusterIP, annotations: {example.com/scrape: "true"}}}
serviceMonitor: {enabled: true, interval: 15s, scrapeTimeout: 5s, labels: {release: prometheus}}
prometheusRule: {enabled: true, labels: {release: prometheus}}
grafanaDashboard: {enabled: true, namespace: grafana, labels: {grafana_dashboard: "1"}, annotations: {grafana_folder: Operators}}
resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {cpu: "1", memory: 256Mi}}
podAnnotations: {example.com/a: b}
podLabels: {team: platform}
priorityClassName: system-cluster-critical
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Exists, effect: NoSchedule}]
affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 1, podAffinityTerm: {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app.kubernetes.io/name: metrics-operator}}}}]}}
`)}

func mustYAML(s string) map[string]any {
	var v map[string]any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		panic(err)
	}
	return v
}

// TestChartTakesCRDsAndRBACFromConfig fails when the chart's copies of the
// CRDs and RBAC differ from config/, which `make generate` writes: run
// `make generate` (or `make chart-sync`) and commit.
func TestChartTakesCRDsAndRBACFromConfig(t *testing.T) {
	root := testenv.RepoRoot()
	for _, c := range []struct{ config, chart string }{
		{filepath.Join(root, "config", "crd", "bases"), filepath.Join(chartDir(), "crds")},
		{filepath.Join(root, "config", "rbac"), filepath.Join(chartDir(), "files", "rbac")},
	} {
		want := yamlFiles(t, c.config)
		got := yamlFiles(t, c.chart)
		if len(want) == 0 {
			t.Fatalf("%s holds no YAML", c.config)
		}
		for name, data := range want {
			if g, ok := got[name]; !ok {
				t.Errorf("%s is missing from %s: run make chart-sync", name, c.chart)
			} else if !bytes.Equal(g, data) {
				t.Errorf("%s/%s differs from %s/%s: run make chart-sync", c.chart, name, c.config, name)
			}
		}
		for name := range got {
			if _, ok := want[name]; !ok {
				t.Errorf("%s/%s has no source in %s: run make chart-sync", c.chart, name, c.config)
			}
		}
	}
}

// yamlFiles reads dir's YAML files but kustomize's.
func yamlFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") || e.Name() == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = data
	}
	return files
}

// TestChartLints runs helm lint --strict with the default and the custom
// values: errors and warnings fail.
func TestChartLints(t *testing.T) {
	for _, r := range []release{defaultRelease, customRelease} {
		linter := lint.AllWithKubeVersionAndSchemaValidation(chartDir(), r.values, r.namespace, nil, false)
		for _, m := range linter.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("helm lint (%s): %s", r.name, m)
			} else {
				t.Logf("helm lint (%s): %s", r.name, m)
			}
		}
	}
}

// TestChartRefusesSeveralReplicasWithoutLeaderElection: two replicas
// without a leader would both push and write status.
func TestChartRefusesSeveralReplicasWithoutLeaderElection(t *testing.T) {
	_, err := render(t, release{name: "x", namespace: "x", values: mustYAML(`{replicaCount: 2, leaderElection: {enabled: false}}`)})
	if err == nil || !strings.Contains(err.Error(), "needs leaderElection.enabled") {
		t.Fatalf("rendering two replicas without leader election: got %v, want the chart's refusal", err)
	}
}

// TestChartShardingRunsEveryReplica: with sharding.enabled several
// replicas are allowed, and leader election is off whatever
// leaderElection.enabled says (every replica serves its share).
func TestChartShardingRunsEveryReplica(t *testing.T) {
	dep := renderedDeployment(t, release{name: "x", namespace: "x", values: mustYAML(`{replicaCount: 3, sharding: {enabled: true}}`)})
	args := dep.Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--sharding=true") || !slices.Contains(args, "--leader-elect=false") {
		t.Errorf("sharded Deployment runs %v, want --sharding=true and --leader-elect=false", args)
	}
}

// renderedDeployment renders r and returns its Deployment.
func renderedDeployment(t *testing.T, r release) appsv1.Deployment {
	t.Helper()
	objs, err := render(t, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range objs {
		if u.GetKind() != "Deployment" {
			continue
		}
		var dep appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &dep); err != nil {
			t.Fatal(err)
		}
		return dep
	}
	t.Fatal("no Deployment rendered")
	return appsv1.Deployment{}
}

// TestChartRefusesMistypedValues: values.schema.json refuses a misspelt
// key, which would otherwise silently leave a tenancy setting at its
// default.
func TestChartRefusesMistypedValues(t *testing.T) {
	_, err := render(t, release{name: "x", namespace: "x", values: mustYAML(`{tenancy: {defaultServiceAcount: reader}}`)})
	if err == nil || !strings.Contains(err.Error(), "defaultServiceAcount") {
		t.Fatalf("rendering with a misspelt tenancy key: got %v, want a schema error naming it", err)
	}
	_, err = render(t, release{name: "x", namespace: "x", values: mustYAML(`{limits: {maxSeriesTotal: -5}}`)})
	if err == nil {
		t.Fatal("rendering with maxSeriesTotal -5 succeeded, want a schema error")
	}
}

// TestChartInstallsOnAPIServer renders the chart as `helm install` would
// and applies every object to the test API server with a server-side dry
// run (dryRun=All): the API server validates each one against its schema
// (the CRDs' for the DataSink), admission and RBAC escalation checks, but
// stores nothing. The CRDs are applied for real first, as Helm installs a
// chart's crds/ before its templates.
func TestChartInstallsOnAPIServer(t *testing.T) {
	testenv.Require(t, env)
	installCRDs(t)
	installMonitoringCRDs(t)
	t.Run("an invalid value is refused", func(t *testing.T) {
		// The DataSink CRD's validation refuses an ftp endpoint: the dry run
		// reaches the schema, it does not just parse the YAML.
		objs, err := render(t, release{name: "bad", namespace: "bad", values: mustYAML(`{defaultDataSink: {enabled: true, endpoint: "ftp://collector"}}`)})
		if err != nil {
			t.Fatal(err)
		}
		createNamespace(t, "bad")
		for _, u := range objs {
			if u.GetKind() != "DataSink" {
				continue
			}
			err := env.Client.Apply(t.Context(), client.ApplyConfigurationFromUnstructured(u),
				client.FieldOwner("helm"), client.ForceOwnership, client.DryRunAll)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("dry run of a DataSink with an ftp endpoint: got %v, want Invalid", err)
			}
			return
		}
		t.Fatal("no DataSink rendered")
	})
	for _, r := range []release{defaultRelease, customRelease} {
		t.Run(r.name, func(t *testing.T) {
			objs, err := render(t, r)
			if err != nil {
				t.Fatal(err)
			}
			for _, ns := range namespacesOf(objs, r.namespace) {
				createNamespace(t, ns)
			}
			kinds := map[string]int{}
			for _, u := range objs {
				kinds[u.GetKind()]++
				err := env.Client.Apply(t.Context(), client.ApplyConfigurationFromUnstructured(u),
					client.FieldOwner("helm"), client.ForceOwnership, client.DryRunAll)
				if err != nil {
					t.Errorf("server-side dry run of %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
				}
			}
			t.Logf("%d objects accepted by the API server: %v", len(objs), kinds)
			for _, kind := range []string{"Deployment", "ServiceAccount", "Service", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} {
				if kinds[kind] == 0 {
					t.Errorf("the rendering holds no %s", kind)
				}
			}
		})
	}
}

// TestChartRBACIsConfigRBAC checks that the rendered RBAC is config/rbac's
// with the release's names: the same rules and aggregation, bound to the
// release's ServiceAccount.
func TestChartRBACIsConfigRBAC(t *testing.T) {
	config := configRBAC(t)
	for _, r := range []release{defaultRelease, customRelease} {
		objs, err := render(t, r)
		if err != nil {
			t.Fatal(err)
		}
		fullname, sa := "metrics-operator", "metrics-operator"
		if r.name == customRelease.name {
			fullname, sa = "mo", "metrics-operator-sa"
		}
		rendered := map[string]*unstructured.Unstructured{}
		for _, u := range objs {
			rendered[u.GetKind()+"/"+u.GetName()] = u
		}
		for _, want := range config {
			name := strings.Replace(want.GetName(), "metrics-operator", fullname, 1)
			if r.name == customRelease.name && want.GetName() == "metrics-operator-targets-default" {
				if _, ok := rendered[want.GetKind()+"/"+name]; ok {
					t.Errorf("%s: rbac.defaultTargets=false still renders %s", r.name, name)
				}
				continue
			}
			got, ok := rendered[want.GetKind()+"/"+name]
			if !ok {
				t.Errorf("%s: %s %s of config/rbac is not rendered", r.name, want.GetKind(), name)
				continue
			}
			for _, field := range []string{"rules", "aggregationRule"} {
				if !reflect.DeepEqual(got.Object[field], want.Object[field]) {
					t.Errorf("%s: %s %s: %s differ from config/rbac:\n got %v\nwant %v", r.name, want.GetKind(), name, field,
						got.Object[field], want.Object[field])
				}
			}
			if want.GetNamespace() != "" && got.GetNamespace() != r.namespace {
				t.Errorf("%s: %s %s is in namespace %q, want %q", r.name, want.GetKind(), name, got.GetNamespace(), r.namespace)
			}
			if want.GetKind() == "ClusterRoleBinding" || want.GetKind() == "RoleBinding" {
				checkBinding(t, got, strings.Replace(want.Object["roleRef"].(map[string]any)["name"].(string), "metrics-operator", fullname, 1), sa, r.namespace)
			}
			for k, v := range want.GetLabels() {
				if got.GetLabels()[k] != v {
					t.Errorf("%s: %s %s lost its label %s=%s", r.name, want.GetKind(), name, k, v)
				}
			}
		}
		if r.name == customRelease.name {
			extra, ok := rendered["ClusterRole/mo-targets-extra"]
			if !ok || extra.GetLabels()["metrics.cloud.sap/aggregate-to-operator"] != "true" {
				t.Errorf("rbac.extraTargetRules: no ClusterRole mo-targets-extra with the aggregation label")
			}
		}
	}
}

func checkBinding(t *testing.T, u *unstructured.Unstructured, role, sa, namespace string) {
	t.Helper()
	var b rbacv1.RoleBinding // a ClusterRoleBinding has the same roleRef and subjects
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &b); err != nil {
		t.Fatal(err)
	}
	want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: namespace}}
	if b.RoleRef.Name != role || !reflect.DeepEqual(b.Subjects, want) {
		t.Errorf("%s %s binds %s to %v, want %s to %v", u.GetKind(), u.GetName(), b.RoleRef.Name, b.Subjects, role, want)
	}
}

// TestChartDeploymentRunsTheOperatorAsValuesSay parses the rendered
// command line with the operator's own flags and checks the options it
// gives, and the pod's security settings.
func TestChartDeploymentRunsTheOperatorAsValuesSay(t *testing.T) {
	for _, c := range []struct {
		release release
		want    func(o *operator.Options) []string
	}{
		{defaultRelease, func(o *operator.Options) []string {
			return check(
				o.LeaderElect, true, o.Sharding, false,
				o.MetricsSecure, true, o.MetricsAddr, ":8443",
				o.DefaultServiceAccount, "", o.NoCrossNamespaceRefs, false,
				o.MaxSeriesPerMetric, operator.DefaultMaxSeriesPerMetric, o.MaxSeriesTotal, operator.DefaultMaxSeriesTotal,
				o.MaxRemoteResponseBytes, int64(remotelimit.DefaultMaxResponseBytes),
				o.MaxRemoteWatchesPerNamespace, operator.DefaultMaxRemoteWatchesPerNamespace,
				o.MaxRemoteObjectsPerNamespace, operator.DefaultMaxRemoteObjectsPerNamespace,
				o.MaxRemoteReadsPerNamespace, operator.DefaultMaxRemoteReadsPerNamespace,
				o.MaxPushesPerNamespace, coordinator.DefaultMaxPushesPerNamespace,
				o.MinExportInterval, 5*time.Second, o.ExportBackoffMax, 5*time.Minute,
				len(o.DataSinkAllowedEndpoints), 0, len(o.ClusterAllowedEndpoints), 0)
		}},
		{customRelease, func(o *operator.Options) []string {
			return check(
				o.LeaderElect, false, o.LeaseDuration, 30*time.Second, o.RetryPeriod, 4*time.Second,
				o.Sharding, true, o.ShardLeaseDuration, 30*time.Second, o.ShardRenewInterval, 5*time.Second, o.ShardWarmStandby, true,
				o.MetricsSecure, false, o.MetricsAddr, ":8080",
				o.ClusterName, "prod-eu", o.EventDrivenDefault, true, o.EventNotifyDelay, 50*time.Millisecond, o.PollingWorkers, 8, o.QPS, float32(20), o.Burst, 40,
				o.DefaultServiceAccount, "metrics-reader", o.AccessRecheckPeriod, 30*time.Second, o.NoCrossNamespaceRefs, true,
				o.AccessReviewQPS, float32(5), o.AccessReviewBurst, 10, o.StatusWritesPerSecond, 7.5,
				o.MaxSeriesPerMetric, 500, o.MaxLabelValueLength, -1, o.MaxSeriesTotal, 2000000,
				o.MaxObjectsPerWatch, 200000, o.MaxRemoteResponseBytes, int64(16777216),
				o.MaxRemoteWatchesPerNamespace, 20, o.MaxRemoteObjectsPerNamespace, 100000, o.MaxRemoteReadsPerNamespace, 3,
				o.MaxPushesPerNamespace, 6,
				o.MinExportInterval, 10*time.Second, o.ExportTimeout, 3*time.Second, o.ExportBackoffBase, 2*time.Second,
				o.ExportBackoffMax, time.Minute, o.StatusInterval, time.Minute, o.DataSinkRecheckInterval, 2*time.Minute,
				strings.Join(o.DataSinkAllowedEndpoints, ","), "*.live.dynatrace.com,10.0.0.0/8", o.PprofAddr, ":6060",
				strings.Join(o.ClusterAllowedEndpoints, ","), "*.k8s.example.com,10.20.0.0/16")
		}},
	} {
		dep := renderedDeployment(t, c.release)
		if len(dep.Spec.Template.Spec.Containers) != 1 {
			t.Fatalf("%s: want one container, got %d", c.release.name, len(dep.Spec.Template.Spec.Containers))
		}
		ctr := dep.Spec.Template.Spec.Containers[0]
		var opts operator.Options
		fs := flag.NewFlagSet("metrics-operator", flag.ContinueOnError)
		opts.BindFlags(fs)
		(&zap.Options{}).BindFlags(fs)
		if err := fs.Parse(ctr.Args); err != nil {
			t.Fatalf("%s: the operator refuses the chart's arguments %v: %v", c.release.name, ctr.Args, err)
		}
		if fs.NArg() != 0 {
			t.Errorf("%s: arguments the operator ignores: %v", c.release.name, fs.Args())
		}
		if err := opts.Complete(); err != nil {
			t.Errorf("%s: invalid options: %v", c.release.name, err)
		}
		for _, e := range c.want(&opts) {
			t.Errorf("%s: %s", c.release.name, e)
		}
		pod, sc := dep.Spec.Template.Spec.SecurityContext, ctr.SecurityContext
		if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot || sc == nil || sc.ReadOnlyRootFilesystem == nil ||
			!*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("%s: the pod must run as non-root with a read-only root filesystem and no capabilities: %+v %+v",
				c.release.name, pod, sc)
		}
	}
}

// flagsNotInValues are the operator's flags the chart sets no value for,
// and why.
var flagsNotInValues = map[string]string{
	"operator-namespace":        "the pod's namespace, from $POD_NAMESPACE",
	"leader-election-namespace": "the operator's namespace",
	"pprof-bind-address":        "profiling only: extraArgs",
	"health-probe-bind-address": "fixed: the probes use it",
}

// TestChartCoversEveryOperatorFlag fails when the operator gains a flag
// that the chart neither sets from a value nor lists in
// flagsNotInValues: add a value (values.yaml, values.schema.json, the
// Deployment's args, README.md) or say why not.
func TestChartCoversEveryOperatorFlag(t *testing.T) {
	set := map[string]bool{} // by the default or the custom values
	for _, r := range []release{defaultRelease, customRelease} {
		dep := renderedDeployment(t, r)
		for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			set[name] = true
		}
	}
	var opts operator.Options
	fs := flag.NewFlagSet("metrics-operator", flag.ContinueOnError)
	opts.BindFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := flagsNotInValues[f.Name]; !ok && !set[f.Name] {
			t.Errorf("operator flag --%s has no chart value", f.Name)
		}
	})
}

// check compares pairs of got, want values and describes the differences.
func check(pairs ...any) []string {
	var diffs []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if !reflect.DeepEqual(pairs[i], pairs[i+1]) {
			diffs = append(diffs, fmt.Sprintf("option %d: got %v, want %v", i/2, pairs[i], pairs[i+1]))
		}
	}
	return diffs
}

// render renders the chart's templates like `helm install --dry-run` and
// returns its objects, without NOTES.txt and without the CRDs.
func render(t *testing.T, r release) ([]*unstructured.Unstructured, error) {
	t.Helper()
	ch := loadChart(t)
	vals, err := chartutil.ToRenderValues(ch, r.values,
		chartutil.ReleaseOptions{Name: r.name, Namespace: r.namespace, Revision: 1, IsInstall: true},
		chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for name, text := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		for _, doc := range releaseutil.SplitManifests(text) {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			objs = append(objs, u)
		}
	}
	return objs, nil
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.LoadDir(chartDir())
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// configRBAC reads the RBAC objects of config/rbac.
func configRBAC(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for name, data := range yamlFiles(t, filepath.Join(testenv.RepoRoot(), "config", "rbac")) {
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("%s: %v", name, err)
			}
			if len(u.Object) > 0 && u.GetKind() != "ServiceAccount" {
				objs = append(objs, u)
			}
		}
	}
	return objs
}

// installCRDs applies the chart's crds/ for real and waits until the API
// server serves them.
func installCRDs(t *testing.T) {
	t.Helper()
	for _, f := range loadChart(t).CRDObjects() {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(f.File.Data, crd); err != nil {
			t.Fatalf("%s: %v", f.Filename, err)
		}
		applyCRD(t, crd)
	}
}

// installMonitoringCRDs stands in for the Prometheus Operator's
// ServiceMonitor and PrometheusRule CRDs, which the test control plane
// lacks: they accept any spec, so the API server checks only the objects'
// metadata. The rules themselves are checked by TestRulesParse.
func installMonitoringCRDs(t *testing.T) {
	t.Helper()
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		plural := strings.ToLower(kind) + "s"
		preserve := true
		applyCRD(t, &apiextensionsv1.CustomResourceDefinition{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
			ObjectMeta: metav1.ObjectMeta{Name: plural + ".monitoring.coreos.com"},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: "monitoring.coreos.com",
				Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: kind, ListKind: kind + "List", Plural: plural, Singular: strings.ToLower(kind)},
				Scope: apiextensionsv1.NamespaceScoped,
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
					Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
						Type: "object", XPreserveUnknownFields: &preserve}}}},
			},
		})
	}
}

func applyCRD(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) {
	t.Helper()
	ctx := t.Context()
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(crd)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: obj}
	u.SetAPIVersion("apiextensions.k8s.io/v1")
	u.SetKind("CustomResourceDefinition")
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("helm"), client.ForceOwnership); err != nil {
		t.Fatalf("applying CRD %s: %v", crd.Name, err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(u.GroupVersionKind())
		if err := env.Client.Get(ctx, client.ObjectKey{Name: crd.Name}, got); err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conds {
			if c, ok := c.(map[string]any); ok && c["type"] == string(apiextensionsv1.Established) && c["status"] == "True" {
				return nil
			}
		}
		return fmt.Errorf("CRD %s not established", crd.Name)
	})
	// The client's REST mapper learns of a new kind on its next miss.
	testenv.Eventually(t, 30*time.Second, func() error {
		gk := schema.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind}
		_, err := env.Client.RESTMapper().RESTMapping(gk, crd.Spec.Versions[0].Name)
		return err
	})
}

// namespacesOf lists the namespaces objs live in.
func namespacesOf(objs []*unstructured.Unstructured, release string) []string {
	nss := []string{release}
	for _, u := range objs {
		if ns := u.GetNamespace(); ns != "" && !slices.Contains(nss, ns) {
			nss = append(nss, ns)
		}
	}
	return nss
}

func createNamespace(t *testing.T, name string) {
	t.Helper()
	err := env.Client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}
