package informers_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/SAP/metrics-operator/internal/informers"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestMetadataClientWatches watches ConfigMaps through NewMetadataClient
// against the API server: every object of a streamed list arrives decoded
// straight into the evaluation engine's map (a metaObject), and the
// watch's response is gzip-compressed only when the client is not asked
// for uncompressed watches (as the operator asks for its own cluster).
func TestMetadataClientWatches(t *testing.T) {
	testenv.Require(t, env)
	const ns, objects = "metadata-watch", 3
	createConfigMaps(t, ns, objects)
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	for _, uncompressed := range []bool{true, false} {
		var watches, gzipped atomic.Int32
		cfg := rest.CopyConfig(env.Config)
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return roundTripper(func(r *http.Request) (*http.Response, error) {
				resp, err := rt.RoundTrip(r)
				if err == nil && r.URL.Query().Get("watch") == "true" {
					watches.Add(1)
					if resp.Uncompressed || resp.Header.Get("Content-Encoding") == "gzip" {
						gzipped.Add(1)
					}
				}
				return resp, err
			})
		})
		md, err := informers.NewMetadataClient(cfg, nil, uncompressed)
		if err != nil {
			t.Fatal(err)
		}
		send, timeout := true, int64(30)
		w, err := md.Resource(gvr).Namespace(ns).Watch(t.Context(), metav1.ListOptions{SendInitialEvents: &send,
			ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan, AllowWatchBookmarks: true, TimeoutSeconds: &timeout})
		if err != nil {
			t.Fatal(err)
		}
		for added := 0; added < objects; {
			select {
			case ev := <-w.ResultChan():
				if ev.Type != watch.Added {
					continue
				}
				added++
				md, ok := informers.MetaObjectMap(ev.Object)
				if !ok {
					t.Fatalf("uncompressed %v: a watch event's object is a %T, want a metaObject", uncompressed, ev.Object)
				}
				if md["namespace"] != ns || md["uid"] == nil || md["creationTimestamp"] == nil || md["managedFields"] != nil {
					t.Errorf("uncompressed %v: decoded metadata %v", uncompressed, md)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("uncompressed %v: %d of %d objects after 30s", uncompressed, added, objects)
			}
		}
		w.Stop()
		wantGzipped := int32(1)
		if uncompressed {
			wantGzipped = 0
		}
		if watches.Load() != 1 || gzipped.Load() != wantGzipped {
			t.Errorf("uncompressed %v: %d watches, %d of them gzip-compressed; want 1 and %d", uncompressed,
				watches.Load(), gzipped.Load(), wantGzipped)
		}
	}
}
