package deploytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// The alerts and the dashboard the chart ships.
var (
	rulesFile     = filepath.Join(chartDir(), "rules", "metrics-operator.rules.yaml")
	dashboardFile = filepath.Join(chartDir(), "dashboards", "metrics-operator.json")
)

// query is one PromQL expression and where it comes from.
type query struct {
	where, expr string
}

// ruleQueries parses a Prometheus rule file with Prometheus' own rule
// parser (which also parses every expression and annotation template) and
// returns its expressions.
func ruleQueries(path string) ([]query, error) {
	groups, errs := rulefmt.ParseFile(path, false, model.LegacyValidation, parser.NewParser(parser.Options{}),
		slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var qs []query
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{where: fmt.Sprintf("%s: %s", filepath.Base(path), r.Alert+r.Record), expr: r.Expr})
		}
	}
	return qs, nil
}

// grafanaVariables are what Grafana puts in place of its variables before
// a query reaches Prometheus; any other $variable is an error.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
	"$namespace", ".*", "$job", ".*")

// labelValues matches Grafana's label_values(selector, label) variable query.
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)

// dashboardQueries returns the PromQL of a Grafana dashboard: every
// panel's targets (rows' panels included) and the selectors of its
// label_values variables, with Grafana's variables replaced.
func dashboardQueries(path string) ([]query, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	type panel struct {
		Title   string                  `json:"title"`
		Targets []struct{ Expr string } `json:"targets"`
		Panels  []json.RawMessage       `json:"panels"`
	}
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var qs []query
	add := func(where, expr string) {
		qs = append(qs, query{where: filepath.Base(path) + ": " + where, expr: grafanaVariables.Replace(expr)})
	}
	var walk func([]json.RawMessage) error
	walk = func(raw []json.RawMessage) error {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				return err
			}
			for _, t := range p.Targets {
				add("panel "+p.Title, t.Expr)
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			// Older dashboards keep the query as a plain string.
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				return nil, fmt.Errorf("%s: variable %s: %w", path, v.Name, err)
			}
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			return nil, fmt.Errorf("%s: variable %s: want label_values(selector, label), got %q", path, v.Name, q.Query)
		}
		add("variable "+v.Name, m[1])
	}
	return qs, nil
}

// served maps each series name the operator serves to its label names;
// nil label names admit any label.
type served map[string]map[string]bool

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = map[string]bool{"namespace": true, "job": true, "pod": true, "instance": true, "service": true,
	"endpoint": true, "container": true}

// checkQueries parses each query with Prometheus' PromQL parser and
// checks that every metric it selects is served, and every label it
// matches on is one of that metric's or a target label; it returns one
// error per problem.
func checkQueries(qs []query, srv served) []error {
	var errs []error
	p := parser.NewParser(parser.Options{})
	for _, q := range qs {
		if strings.Contains(q.expr, "$") {
			errs = append(errs, fmt.Errorf("%s: unknown Grafana variable in %q", q.where, q.expr))
			continue
		}
		expr, err := p.ParseExpr(q.expr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", q.where, err))
			continue
		}
		for _, sel := range selectors(expr) {
			labels, ok := srv[sel.name]
			if !ok {
				errs = append(errs, fmt.Errorf("%s: the operator serves no metric %s", q.where, sel.name))
				continue
			}
			for _, l := range sel.labels {
				if labels != nil && !labels[l] && !targetLabels[l] {
					errs = append(errs, fmt.Errorf("%s: metric %s has no label %s", q.where, sel.name, l))
				}
			}
		}
	}
	return errs
}

// selector is a metric name an expression selects and the labels it
// matches on.
type selector struct {
	name   string
	labels []string
}

// selectors lists what an expression selects; a selector without a name
// (only {__name__=~...} or labels) has the name "".
func selectors(expr parser.Expr) []selector {
	var sels []selector
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			sel := selector{name: vs.Name}
			for _, m := range vs.LabelMatchers {
				if m.Name == "__name__" {
					sel.name = m.Value
				} else {
					sel.labels = append(sel.labels, m.Name)
				}
			}
			sels = append(sels, sel)
		}
		return nil
	})
	return sels
}

// servedNames lists the series names of scraped families, with their
// label names: a histogram's _bucket (with le), _sum and _count, a
// summary's _sum and _count.
func servedNames(fams map[string]*dto.MetricFamily) served {
	srv := served{}
	for name, f := range fams {
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		srv[name] = labels
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			srv[name+"_bucket"] = with(labels, "le")
			srv[name+"_sum"], srv[name+"_count"] = labels, labels
		case dto.MetricType_SUMMARY:
			srv[name] = with(labels, "quantile")
			srv[name+"_sum"], srv[name+"_count"] = labels, labels
		}
	}
	return srv
}

func with(labels map[string]bool, name string) map[string]bool {
	out := map[string]bool{name: true}
	for l := range labels {
		out[l] = true
	}
	return out
}

// shippedQueries are the chart's alert and dashboard queries.
func shippedQueries(t *testing.T) []query {
	t.Helper()
	rules, err := ruleQueries(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	dash, err := dashboardQueries(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) == 0 || len(dash) == 0 {
		t.Fatalf("%d rules and %d dashboard queries; want some of each", len(rules), len(dash))
	}
	return append(rules, dash...)
}

// TestShippedQueriesNameOnlyServedMetrics runs the operator binary against
// the test control plane with what makes it serve every family it has
// (an event-driven Metric whose ConfigMaps change, pushes to a real OTLP
// receiver, a Metric that is not Ready, leader election), scrapes its
// /metrics, and checks that every alert and dashboard query parses and
// names only metrics of that scrape. Families appear on /metrics only once
// they have a series, so it waits until each name the queries use is
// there, and fails naming the missing ones. It also checks that
// metrics_operator_metrics_not_ready counts the one Metric that is not
// Ready under its reason.
func TestShippedQueriesNameOnlyServedMetrics(t *testing.T) {
	testenv.Require(t, env)
	qs := shippedQueries(t)
	// Parse errors need no operator.
	if errs := checkQueries(qs, allNames(qs)); len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	url := startOperatorWithTraffic(t)
	var srv served
	testenv.Eventually(t, 2*time.Minute, func() error {
		fams, err := scrape.Families(url)
		if err != nil {
			return err
		}
		srv = servedNames(fams)
		return errors.Join(checkQueries(qs, srv)...)
	})
	t.Logf("%d queries checked against %d served names", len(qs), len(srv))

	// The MetricsOperatorMetricsNotReady alert's gauge counts the Metric on
	// a kind no API server serves, and not the Ready one.
	testenv.Eventually(t, time.Minute, func() error {
		fams, err := scrape.Families(url)
		if err != nil {
			return err
		}
		got := scrape.Strings(scrape.Samples(fams, "metrics_operator_metrics_not_ready"))
		if want := "{kind=Metric,reason=TargetNotFound} 1"; !slices.Contains(got, want) || len(got) != 1 {
			return fmt.Errorf("metrics_operator_metrics_not_ready is %v, want only %s", got, want)
		}
		return nil
	})

	t.Run("broken fixtures fail", func(t *testing.T) {
		broken, err := ruleQueries(filepath.Join("testdata", "unknown-metric.rules.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		dash, err := dashboardQueries(filepath.Join("testdata", "unknown-metric.dashboard.json"))
		if err != nil {
			t.Fatal(err)
		}
		errs := checkQueries(append(broken, dash...), srv)
		for _, want := range []string{"serves no metric metrics_operator_exports_failed_total",
			"serves no metric metrics_operator_event_lag_seconds_bucket", "metrics_operator_exports_total has no label reslt"} {
			if !slices.ContainsFunc(errs, func(e error) bool { return strings.Contains(e.Error(), want) }) {
				t.Errorf("the check let %q pass (errors: %v)", want, errs)
			}
		}
		if len(errs) != 3 {
			t.Errorf("want exactly the two unknown names and the unknown label reported, got %v", errs)
		}
	})
}

// TestShippedQueriesParse checks the alerts and dashboard with Prometheus'
// parsers alone (also under -short), and that a broken rule file is
// refused.
func TestShippedQueriesParse(t *testing.T) {
	qs := shippedQueries(t)
	if errs := checkQueries(qs, allNames(qs)); len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	if _, err := ruleQueries(filepath.Join("testdata", "invalid.rules.yaml")); err == nil {
		t.Fatal("a rule whose expression does not parse was accepted")
	}
}

// allNames admits every name and label the queries use, for checks of
// syntax only.
func allNames(qs []query) served {
	srv := served{}
	p := parser.NewParser(parser.Options{})
	for _, q := range qs {
		if expr, err := p.ParseExpr(q.expr); err == nil {
			for _, sel := range selectors(expr) {
				srv[sel.name] = nil
			}
		}
	}
	return srv
}

// startOperatorWithTraffic starts the operator binary and gives it work
// that touches each of its own metrics; it returns its /metrics URL.
func startOperatorWithTraffic(t *testing.T) string {
	t.Helper()
	ctx := t.Context()
	const ns = "monitoring-names"
	createNamespace(t, ns)
	sink := otlpsink.Start(t)
	for _, o := range []client.Object{
		&v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
			Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: sink.HTTPURL()}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "counted", Namespace: ns}},
		&v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "configmaps", Namespace: ns}, Spec: v1alpha1.MetricSpec{
			Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns, EventDriven: ptr.To(true),
			Interval: metav1.Duration{Duration: 10 * time.Second}}},
		// A kind no API server serves: Ready=False, TargetNotFound.
		&v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "widgets", Namespace: ns}, Spec: v1alpha1.MetricSpec{
			Target:   v1alpha1.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"},
			Interval: metav1.Duration{Duration: 10 * time.Second}}},
	} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	bin, err := testenv.BuildOperator(dir)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := env.WriteAdminKubeconfig(dir, "operator")
	if err != nil {
		t.Fatal(err)
	}
	op, err := testenv.StartOperator(bin, kubeconfig, dir, "operator", "--operator-namespace="+ns, "--leader-elect",
		"--min-export-interval=200ms", "--status-update-interval=1s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := op.Stop(); err != nil {
			t.Errorf("stopping the operator: %v", err)
		}
		if t.Failed() {
			if log, err := os.ReadFile(op.LogPath); err == nil {
				t.Logf("operator log:\n%s", lastLines(log, 40))
			}
		}
	})
	// A change after the watch runs: an event, and a push of the change.
	testenv.Eventually(t, time.Minute, func() error {
		cm := &corev1.ConfigMap{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "counted"}, cm); err != nil {
			return err
		}
		cm.Labels = map[string]string{"touched": time.Now().Format("150405.000000")}
		if err := env.Client.Update(ctx, cm); err != nil {
			return err
		}
		fams, err := scrape.Families(op.MetricsURL)
		if err != nil {
			return err
		}
		if fams["metrics_operator_event_to_metrics_seconds"] == nil || fams["metrics_operator_exports_total"] == nil {
			return errors.New("no event applied and no push yet")
		}
		return nil
	})
	return op.MetricsURL
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestChartShipsRulesAndDashboard checks that the chart's PrometheusRule
// carries the rule file's groups unchanged (Helm must not evaluate the
// alerts' {{ $labels }} templates) and still parses as Prometheus rules,
// and that the dashboard ConfigMap carries the dashboard as it is.
func TestChartShipsRulesAndDashboard(t *testing.T) {
	objs, err := render(t, customRelease)
	if err != nil {
		t.Fatal(err)
	}
	wantRules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := yaml.Unmarshal(wantRules, &want); err != nil {
		t.Fatal(err)
	}
	wantDashboard, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var sawRule, sawDashboard bool
	for _, u := range objs {
		switch u.GetKind() {
		case "PrometheusRule":
			sawRule = true
			groups := u.Object["spec"].(map[string]any)["groups"]
			if !reflect.DeepEqual(groups, want["groups"]) {
				t.Errorf("the PrometheusRule's groups differ from %s", rulesFile)
			}
			data, err := yaml.Marshal(map[string]any{"groups": groups})
			if err != nil {
				t.Fatal(err)
			}
			if _, errs := rulefmt.Parse(data, false, model.LegacyValidation, parser.NewParser(parser.Options{}),
				slog.New(slog.DiscardHandler)); len(errs) > 0 {
				t.Errorf("the PrometheusRule's groups do not parse: %v", errors.Join(errs...))
			}
		case "ConfigMap":
			sawDashboard = true
			data, _, _ := unstructured.NestedString(u.Object, "data", "metrics-operator.json")
			if strings.TrimSpace(data) != strings.TrimSpace(string(wantDashboard)) {
				t.Errorf("the dashboard ConfigMap does not hold %s as it is", dashboardFile)
			}
			if u.GetNamespace() != "grafana" || u.GetLabels()["grafana_dashboard"] != "1" {
				t.Errorf("dashboard ConfigMap in %q with labels %v, want namespace grafana and grafana_dashboard=1",
					u.GetNamespace(), u.GetLabels())
			}
		}
	}
	if !sawRule || !sawDashboard {
		t.Fatalf("prometheusRule and grafanaDashboard enabled, rendered PrometheusRule %v, dashboard %v", sawRule, sawDashboard)
	}
}
