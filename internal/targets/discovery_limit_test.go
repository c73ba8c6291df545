package targets

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusterfault"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/remotelimit"
)

// TestDiscoveryOverTheLimit resolves a kind through a remote cluster's
// discovery, as the operator's connections do, from a server that
// answers every discovery request with a document of 8 MiB, streamed,
// through a bound of 1 MiB: the Lister reports ResponseTooLarge naming
// the cluster access and the flag, and nothing of the document is
// decoded.
func TestDiscoveryOverTheLimit(t *testing.T) {
	const limit = 1 << 20
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[`)
		entry := `{"clientCIDR":"0.0.0.0/0","serverAddress":"` + strings.Repeat("x", 1000) + `"},`
		for range 8 << 10 {
			if _, err := io.WriteString(w, entry); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, `{"clientCIDR":"0.0.0.0/0","serverAddress":"x"}]}`)
	}))
	defer srv.Close()
	cfg := &rest.Config{Host: srv.URL}
	cfg.Wrap(remotelimit.Wrap(remotelimit.Limits{MaxResponseBytes: limit, Source: "the RemoteClusterAccess a/b"}))
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, hc)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, hc)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLister(mapper, dyn, WithErrors(clusterfault.Classify))
	_, err = l.Mapping(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"})
	if reason.Of(err, "") != v1alpha1.ReasonResponseTooLarge {
		t.Fatalf("Mapping: %v (reason %q), want ResponseTooLarge", err, reason.Of(err, ""))
	}
	if strings.Contains(err.Error(), "Please retry") {
		t.Errorf("the message repeats client-go's wrapping: %s", err)
	}
	for _, want := range []string{"RemoteClusterAccess a/b", "--max-remote-response-bytes", "discovery", "ConfigMap"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the message does not name %q: %s", want, err)
		}
	}
	t.Logf("Mapping: %v", err)
}
