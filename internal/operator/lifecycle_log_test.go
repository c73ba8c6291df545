package operator_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestLifecycleLogsOfOneMetric runs the operator binary at verbosity 2
// and follows one event-driven Metric through its life in the structured
// log: registered, its watch started and synced (with the object count),
// an event applied, an export, the metric dropped and its watch stopped,
// every line carrying the keys metric or cluster, resource and namespace
// that tie it to the others.
func TestLifecycleLogsOfOneMetric(t *testing.T) {
	testenv.Require(t, env)
	const ns = "lifecycle-log"
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	for _, name := range []string{"one", "two"} {
		mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}})
	}
	sink := otlpsink.Start(t)
	mustCreate(t, &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: sink.HTTPURL()}}})
	p := startProcess(t, ns, "--zap-log-level=2")

	m := &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "logged", Namespace: ns},
		Spec: v1alpha1.MetricSpec{Name: "lifecycle_configmaps", Target: configMaps, Namespace: ns,
			EventDriven: ptr.To(true), Interval: metav1.Duration{Duration: time.Hour}}}
	mustCreate(t, m)
	waitValue(t, p.metricsURL, "lifecycle_configmaps", 2)
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "three", Namespace: ns}})
	waitValue(t, p.metricsURL, "lifecycle_configmaps", 3)
	testenv.Eventually(t, 30*time.Second, func() error {
		if pts := sink.LatestPoints("lifecycle_configmaps"); len(pts) != 1 || pts[0].Value != 3 {
			return fmt.Errorf("pushed %v, want one point of 3", pts)
		}
		return nil
	})
	if err := env.Client.Delete(t.Context(), m); err != nil {
		t.Fatal(err)
	}

	metric := "Metric/" + ns + "/logged"
	watch := map[string]any{"cluster": "local", "resource": "configmaps", "namespace": ns}
	want := []struct {
		msg  string
		keys map[string]any
	}{
		{"Metric registered for events", merge(watch, map[string]any{"metric": metric})},
		{"Informer started", watch},
		{"Informer synced", merge(watch, map[string]any{"objects": 2.0})},
		{"Event applied", merge(watch, map[string]any{"op": "upsert", "changed": 1.0})},
		{"Exported", map[string]any{"sink": ns + "/default"}},
		{"Metric dropped from events", merge(watch, map[string]any{"metric": metric})},
		{"Informer stopped", watch},
	}
	// Pairs of want (by index) that must appear in this order; the watch
	// may start before or after the registration is logged.
	order := [][2]int{{0, 2}, {1, 2}, {2, 3}, {3, 5}, {0, 5}, {5, 6}}
	var at []int
	var found []string
	testenv.Eventually(t, 30*time.Second, func() error {
		lines := parseLog(p.log(t))
		at, found = at[:0], found[:0]
		for _, w := range want {
			i := findLine(lines, w.msg, w.keys)
			if i < 0 {
				return fmt.Errorf("no line %q with %v in %d lines", w.msg, w.keys, len(lines))
			}
			at = append(at, i)
			b, _ := json.Marshal(lines[i])
			found = append(found, string(b))
		}
		for _, o := range order {
			if at[o[0]] > at[o[1]] {
				return fmt.Errorf("%q logged after %q", want[o[0]].msg, want[o[1]].msg)
			}
		}
		return nil
	})
	t.Logf("lifecycle lines:\n%s", strings.Join(found, "\n"))
}

func merge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// parseLog reads the operator's JSON log lines.
func parseLog(b []byte) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if strings.HasPrefix(sc.Text(), "{") && json.Unmarshal(sc.Bytes(), &line) == nil {
			out = append(out, line)
		}
	}
	return out
}

// findLine returns the index of the first line with msg and every key of
// keys, or -1.
func findLine(lines []map[string]any, msg string, keys map[string]any) int {
next:
	for i, l := range lines {
		if l["msg"] != msg {
			continue
		}
		for k, v := range keys {
			if l[k] != v {
				continue next
			}
		}
		return i
	}
	return -1
}
