package operator_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestSinkReplyReachesStatusOnlyAsExcerpt: a sink that rejects every push
// with a long body full of control characters. The Metric's ExportFailed
// message quotes at most a short printable excerpt of it, and no event
// quotes it at all.
func TestSinkReplyReachesStatusOnlyAsExcerpt(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "sink-reply"
	const marker = "REPLY-MARKER"
	reply := marker + "\x1b[2J\x00" + strings.Repeat("internal detail ", 200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(reply))
	}))
	t.Cleanup(srv.Close)

	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "one", Namespace: ns}})
	ds := &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "chatty", Namespace: ns},
		Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: srv.URL + "/v1/metrics"}}}
	m := &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "to-chatty", Namespace: ns},
		Spec: v1alpha1.MetricSpec{Name: "sink_reply_configmaps",
			Target:      v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Namespace:   ns,
			EventDriven: ptr.To(true),
			Interval:    metav1.Duration{Duration: 10 * time.Second},
			DataSinkRef: &v1alpha1.DataSinkReference{Name: "chatty"}}}
	mustCreate(t, ds)
	mustCreate(t, m)
	t.Cleanup(func() {
		_ = env.Client.Delete(ctx, m)
		_ = env.Client.Delete(ctx, ds)
	})
	run(t, env.Config, operator.Options{MetricsAddr: "0", ProbeAddr: "0", Namespace: ns, MinExportInterval: 200 * time.Millisecond})

	c := waitMetricReason(t, ns, "to-chatty", v1alpha1.ReasonExportFailed, 60*time.Second)
	_, excerpt, ok := strings.Cut(c.Message, "body: ")
	if !ok || !strings.HasPrefix(excerpt, marker) {
		t.Fatalf("message %q has no excerpt of the reply", c.Message)
	}
	if len(excerpt) > 128 || strings.Count(c.Message, "internal detail") > 10 {
		t.Errorf("excerpt is %d bytes: %q", len(excerpt), excerpt)
	}
	for _, b := range []byte(c.Message) {
		if b < 0x20 || b > 0x7e {
			t.Fatalf("non-printable byte %#x in the message %q", b, c.Message)
		}
	}

	// The transition to ExportFailed has been written, so its event too.
	testenv.Eventually(t, 30*time.Second, func() error {
		var list eventsv1.EventList
		if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		found := false
		for _, e := range list.Items {
			if strings.Contains(e.Note, marker) || strings.Contains(e.Note, "internal detail") {
				t.Fatalf("event %s quotes the sink's reply: %q", e.Name, e.Note)
			}
			found = found || e.Reason == v1alpha1.ReasonExportFailed
		}
		if !found {
			return errors.New("no ExportFailed event yet")
		}
		return nil
	})
}
