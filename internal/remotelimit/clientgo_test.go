package remotelimit_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/SAP/metrics-operator/internal/clusterfault"
	"github.com/SAP/metrics-operator/internal/remotelimit"
)

// TestThroughClientGo reads from a server that answers a LIST with a
// page over the limit and a watch with an event over it, through
// client-go's dynamic client as the operator does: the LIST's error
// still carries the *Error under what client-go wraps it in, and
// clusterfault.Classify unwraps it; the watch delivers the events before
// the large one, then an error event, and OnExceeded is told, since
// client-go's watch decoder passes on only the error's text.
func TestThroughClientGo(t *testing.T) {
	const limit = 1 << 20
	small := `{"type":"ADDED","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"ns","resourceVersion":"2"}}}` + "\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("watch") == "true" {
			_, _ = io.WriteString(w, small)
			_, _ = io.WriteString(w, `{"type":"ADDED","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b","namespace":"ns"},"data":{"k":"`)
			_, _ = w.Write(bytes.Repeat([]byte("x"), 4*limit))
			_, _ = io.WriteString(w, "\"}}}\n")
			return
		}
		_, _ = io.WriteString(w, `{"apiVersion":"v1","kind":"ConfigMapList","metadata":{"resourceVersion":"1"},"items":[`)
		item := `{"metadata":{"name":"a","namespace":"ns"},"data":{"k":"` + strings.Repeat("x", 1000) + `"}}`
		for i := range 2000 {
			if i > 0 {
				_, _ = io.WriteString(w, ",")
			}
			if _, err := io.WriteString(w, item); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, "]}")
	}))
	defer srv.Close()
	cfg := &rest.Config{Host: srv.URL}
	cfg.Wrap(remotelimit.Wrap(remotelimit.Limits{MaxResponseBytes: limit, Source: "the RemoteClusterAccess a/b"}))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cms := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace("ns")

	_, err = cms.List(t.Context(), metav1.ListOptions{})
	tl := remotelimit.As(err)
	if tl == nil || tl.Event {
		t.Fatalf("LIST: %v, want the response over the limit", err)
	}
	if got := clusterfault.Classify(err); remotelimit.As(got) != tl || got.Error() != tl.Error() {
		t.Errorf("Classify gives %v, want the *remotelimit.Error alone", got)
	}

	var reported []*remotelimit.Error
	ctx := remotelimit.OnExceeded(t.Context(), func(e *remotelimit.Error) { reported = append(reported, e) })
	w, err := cms.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var types []watch.EventType
	for done := false; !done; {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				done = true
				break
			}
			types = append(types, ev.Type)
		case <-time.After(30 * time.Second):
			t.Fatal("the watch did not end")
		}
	}
	if len(types) != 2 || types[0] != watch.Added || types[1] != watch.Error {
		t.Errorf("the watch delivered %v, want ADDED then ERROR", types)
	}
	if len(reported) != 1 || !reported[0].Event || reported[0].Limit != limit {
		t.Errorf("OnExceeded heard of %v, want one watch event over %d bytes", reported, limit)
	}
}
