package preview_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/SAP/metrics-operator/internal/preview"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// run runs the real binary and returns its stdout and exit code.
func run(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if errOut.Len() > 0 {
		t.Logf("%s stderr: %s", args[0], errOut.String())
	}
	return out.String(), code
}

// TestPreviewPrintsWhatTheOperatorExports sets up what `make demo` sets up
// (the control plane, config/samples applied with kubectl, the operator
// binary) and checks that `metrics-operator preview -f <sample>` prints,
// for every sample Metric, exactly the series the running operator
// serves on /metrics, and that a broken metric exits 1 with its reason.
func TestPreviewPrintsWhatTheOperatorExports(t *testing.T) {
	testenv.Require(t, env)
	dir := t.TempDir()
	kubeconfig, err := env.WriteAdminKubeconfig(dir, "preview-admin")
	if err != nil {
		t.Fatal(err)
	}
	samples := filepath.Join(testenv.RepoRoot(), "config", "samples")
	metrics, _ := filepath.Glob(filepath.Join(samples, "metric_*.yaml"))
	if len(metrics) < 3 {
		t.Fatalf("found %d sample metrics, want the samples of config/samples", len(metrics))
	}
	for _, f := range append([]string{filepath.Join(samples, "00_demo_objects.yaml")}, metrics...) {
		if out, err := exec.Command(env.KubectlPath, "--kubeconfig", kubeconfig, "apply", "-f", f).CombinedOutput(); err != nil {
			t.Fatalf("kubectl apply -f %s: %v\n%s", f, err, out)
		}
	}
	bin, err := testenv.BuildOperator(dir)
	if err != nil {
		t.Fatal(err)
	}
	op, err := testenv.StartOperator(bin, kubeconfig, dir, "operator")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.Stop() })

	for _, f := range metrics {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, code := run(t, bin, "preview", "-f", f, "--kubeconfig", kubeconfig, "-o", "json")
			if code != preview.ExitReady {
				t.Fatalf("exit %d, want %d; output:\n%s", code, preview.ExitReady, out)
			}
			var results []preview.Result
			if err := json.Unmarshal([]byte(out), &results); err != nil || len(results) != 1 {
				t.Fatalf("output is not one result (%v):\n%s", err, out)
			}
			r := results[0]
			if r.Cost == nil || r.Cost.Watch == "" {
				t.Fatalf("cost %+v, want the objects read and the watch", r.Cost)
			}
			want := previewed(r)
			var got []string
			testenv.Eventually(t, 60*time.Second, func() error {
				fams, err := scrape.Families(op.MetricsURL)
				if err != nil {
					return err
				}
				got = served(scrape.Samples(fams, r.Metric))
				if !slices.Equal(got, want) {
					return fmt.Errorf("/metrics has\n%s\npreview printed\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				return nil
			})
			t.Logf("%s: %d series from %d objects, as on /metrics", r.Metric, len(want), r.Cost.ObjectsRead)
			table, code := run(t, bin, "preview", "-f", f, "--kubeconfig", kubeconfig)
			t.Logf("table:\n%s", table)
			if code != preview.ExitReady || !strings.Contains(table, "REASON: Ready") || !strings.Contains(table, "COST:") {
				t.Errorf("table output (exit %d):\n%s", code, table)
			}
		})
	}

	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte(`apiVersion: metrics.cloud.sap/v1alpha1
kind: Metric
metadata: {name: widgets}
spec:
  target: {group: example.com, version: v1, kind: Widget}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := run(t, bin, "preview", "-f", broken, "--kubeconfig", kubeconfig)
	if code != preview.ExitNotReady || !strings.Contains(out, "REASON: TargetNotFound") {
		t.Errorf("broken metric: exit %d, want %d with reason TargetNotFound; output:\n%s", code, preview.ExitNotReady, out)
	}
	if _, code := run(t, bin, "preview", "-f", filepath.Join(dir, "missing.yaml"), "--kubeconfig", kubeconfig); code != preview.ExitError {
		t.Errorf("missing file: exit %d, want %d", code, preview.ExitError)
	}
}

// previewed renders a preview's series as sorted "label=value,..: value"
// lines, leaving out empty labels as the Prometheus text format does.
func previewed(r preview.Result) []string {
	var out []string
	for _, s := range r.Series {
		labels := map[string]string{}
		for i, v := range s.Values {
			labels[r.Labels[i]] = v
		}
		out = append(out, line(labels, float64(s.Value)))
	}
	slices.Sort(out)
	return out
}

func served(samples []scrape.Sample) []string {
	var out []string
	for _, s := range samples {
		out = append(out, line(s.Labels, s.Value))
	}
	slices.Sort(out)
	return out
}

func line(labels map[string]string, value float64) string {
	var parts []string
	for k, v := range labels {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ",") + fmt.Sprintf(": %g", value)
}
