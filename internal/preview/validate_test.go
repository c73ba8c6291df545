package preview_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/SAP/metrics-operator/internal/preview"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

var limits = preview.Limits{MaxSeriesPerMetric: 10000, MaxLabelValueLength: 1024, MaxSeriesTotal: 1000000}

func validate(t *testing.T, input string, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := preview.Main(context.Background(), "validate", append([]string{"-f", "-"}, args...),
		strings.NewReader(input), &out, &errOut, limits)
	return out.String() + errOut.String(), code
}

// TestValidateOffline checks every sample and a broken metric of each
// kind of mistake without a cluster: the reason the operator (or, for the
// schema, the API server) would give, and the exit code.
func TestValidateOffline(t *testing.T) {
	samples, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "metric_*.yaml"))
	for _, f := range samples {
		var out, errOut bytes.Buffer
		if code := preview.Main(context.Background(), "validate", []string{"-f", f}, nil, &out, &errOut, limits); code != preview.ExitReady {
			t.Errorf("%s: exit %d, want %d:\n%s%s", f, code, preview.ExitReady, out.String(), errOut.String())
		}
	}
	const head = "apiVersion: metrics.cloud.sap/v1alpha1\nkind: Metric\nmetadata: {name: m}\nspec:\n"
	for _, tt := range []struct{ name, spec, reason string }{
		{"schema: missing kind", "  target: {version: v1}\n", preview.ReasonInvalid},
		{"schema rule: interval", "  target: {version: v1, kind: ConfigMap}\n  interval: 1s\n", preview.ReasonInvalid},
		{"JSONPath", "  target: {version: v1, kind: ConfigMap}\n  projections: [{name: x, fieldPath: 'a[?(@.b==c)]'}]\n", "InvalidProjection"},
		{"label selector", "  target: {version: v1, kind: ConfigMap}\n  labelSelector: 'a in (b'\n", "InvalidSelector"},
		{"reserved name", "  name: go_goroutines\n  target: {version: v1, kind: ConfigMap}\n", "ReservedName"},
		{"Secret payload", "  target: {version: v1, kind: Secret}\n  projections: [{name: x, fieldPath: data.password}]\n", "SecretDataForbidden"},
		{"label clash", "  target: {version: v1, kind: ConfigMap}\n  projections: [{name: kind, fieldPath: metadata.name}]\n", "InvalidProjection"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, code := validate(t, head+tt.spec)
			if code != preview.ExitNotReady || !strings.Contains(out, "REASON: "+tt.reason) {
				t.Errorf("exit %d, want %d with reason %s; output:\n%s", code, preview.ExitNotReady, tt.reason, out)
			}
		})
	}
	if out, code := validate(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"); code != preview.ExitError {
		t.Errorf("no metric in the input: exit %d, want %d:\n%s", code, preview.ExitError, out)
	}
	if out, code := validate(t, head+"  target: {version: v1, kind: ConfigMap}\n", "-o", "yaml"); code != preview.ExitError {
		t.Errorf("unknown output format: exit %d, want %d:\n%s", code, preview.ExitError, out)
	}
}
