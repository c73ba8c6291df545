package clusters

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusterfault"
	"github.com/SAP/metrics-operator/internal/egress"
	"github.com/SAP/metrics-operator/internal/reason"
)

// fixedDNS answers every lookup with its addresses, whatever the system
// resolver says: a DNS server that answers differently from one lookup
// to the next (rebinding).
type fixedDNS []string

func (f fixedDNS) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	out := make([]netip.Addr, len(f))
	for i, a := range f {
		out[i] = netip.MustParseAddr(a)
	}
	return out, nil
}

// counting is a TCP listener that counts and closes the connections it
// accepts.
type counting struct {
	net.Listener
	accepted atomic.Int64
}

// listen is a counting listener on 127.0.0.1.
func listen(t *testing.T) *counting { return listenOn(t, "127.0.0.1:0") }

func listenOn(t *testing.T, addr string) *counting {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &counting{Listener: l}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			c.accepted.Add(1)
			_ = conn.Close()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); <-done })
	return c
}

func port(l net.Listener) string {
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

func newSet(t *testing.T, rules []string, dns egress.Resolver) *Set {
	t.Helper()
	list, err := egress.Parse(rules, dns)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Local: &rest.Config{Host: "https://local"}, LocalName: "local",
		LocalMapper: meta.NewDefaultRESTMapper(nil), Egress: list})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestServerOutsideTheListIsNeverContacted: a server outside
// --cluster-allowed-endpoints, by address, by a name that resolves
// outside, or behind a proxy outside, fails its definition with
// EndpointNotAllowed, metrics acquiring it get EndpointNotAllowed naming
// the kind of access that defines it, and the listener at that address
// sees no connection.
func TestServerOutsideTheListIsNeverContacted(t *testing.T) {
	l := listen(t)
	s := newSet(t, []string{"10.0.0.0/8", "api.example.com"}, nil)
	proxied := &rest.Config{Host: "https://api.example.com:6443",
		Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: l.Addr().String()})}
	for key, cfg := range map[string]*rest.Config{
		"ns/by-address":              {Host: "https://" + l.Addr().String()},
		"ns/by-name":                 {Host: "https://localhost:" + port(l)},
		"ns/fed/objects/by-address":  {Host: "http://" + l.Addr().String()},
		"ns/fed-cluster//by-name":    {Host: "localhost:" + port(l)},
		"ns/behind-a-proxy-outside":  proxied,
		"ns/fed/objects/proxy-outer": proxied,
	} {
		err := s.Define(key, "c", Definition{Config: cfg})
		if reason.Of(err, "") != v1alpha1.ReasonEndpointNotAllowed {
			t.Fatalf("%s: Define: %v, want %s", key, err, v1alpha1.ReasonEndpointNotAllowed)
		}
		if msg := err.Error(); strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "localhost") ||
			!strings.Contains(msg, "--cluster-allowed-endpoints") {
			t.Errorf("%s: message %q names the address or not the flag", key, msg)
		}
		if err := s.Probe(t.Context(), key); err == nil {
			t.Errorf("%s: a refused cluster probed fine", key)
		}
		_, err = s.Acquire(key, "metric-"+key)
		if reason.Of(err, "") != v1alpha1.ReasonEndpointNotAllowed {
			t.Fatalf("%s: Acquire: %v, want %s", key, err, v1alpha1.ReasonEndpointNotAllowed)
		}
		kind := "RemoteClusterAccess ns/"
		if strings.HasPrefix(key, "ns/fed") {
			kind = "FederatedClusterAccess ns/fed"
		}
		if !strings.Contains(err.Error(), kind) || (kind != "RemoteClusterAccess ns/" && strings.Contains(err.Error(), "RemoteClusterAccess")) {
			t.Errorf("%s: Acquire's message %q does not name %s", key, err, kind)
		}
		t.Logf("%s: %s", key, err)
	}
	if n := l.accepted.Load(); n != 0 {
		t.Fatalf("the listener outside the list saw %d connections", n)
	}
}

// TestDialTimeCheckStopsRebinding: the name is admitted when it is
// defined, because the resolver then says it lies inside the CIDRs; when
// the connection is dialled it resolves to 127.0.0.1, outside them, and
// the dialer refuses it before connecting. The probe and a metric's list
// report EndpointNotAllowed and the listener sees nothing.
func TestDialTimeCheckStopsRebinding(t *testing.T) {
	l := listen(t)
	s := newSet(t, []string{"10.0.0.0/8"}, fixedDNS{"10.1.2.3"})
	key := "ns/rebinding"
	if err := s.Define(key, "rebinding", Definition{Config: &rest.Config{Host: "http://localhost:" + port(l)}}); err != nil {
		t.Fatalf("Define: %v (the resolver said the name lies inside the CIDRs)", err)
	}
	err := s.Probe(t.Context(), key)
	if reason.Of(err, "") != v1alpha1.ReasonEndpointNotAllowed || strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("Probe: %v, want %s naming no address", err, v1alpha1.ReasonEndpointNotAllowed)
	}
	conn, err := s.Acquire(key, "m")
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Clients.Metadata.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).
		List(t.Context(), metav1.ListOptions{})
	if reason.Of(clusterfault.Classify(err), "") != v1alpha1.ReasonEndpointNotAllowed {
		t.Fatalf("a metric's list: %v, want %s", err, v1alpha1.ReasonEndpointNotAllowed)
	}
	if n := l.accepted.Load(); n != 0 {
		t.Fatalf("the listener saw %d connections", n)
	}
	t.Logf("probe: %s", s.Probe(t.Context(), key))
}

// TestAdmittedServerIsReached: a server inside the CIDRs is reached
// through the checking dialer, and one admitted by name too.
func TestAdmittedServerIsReached(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprint(w, `{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[]}`)
	}))
	defer srv.Close()
	s := newSet(t, []string{"127.0.0.0/8", "localhost"}, nil)
	for key, host := range map[string]string{"ns/cidr": srv.URL, "ns/name": "http://localhost:" + port(srv.Listener)} {
		if err := s.Define(key, "c", Definition{Config: &rest.Config{Host: host}}); err != nil {
			t.Fatalf("%s: Define: %v", key, err)
		}
		if err := s.Probe(t.Context(), key); err != nil {
			t.Fatalf("%s: Probe: %v", key, err)
		}
	}
	if requests.Load() != 2 {
		t.Fatalf("the server saw %d requests, want 2", requests.Load())
	}
}

// TestProbeLogsTheCauseOnlyAtV1: a probe of a closed port reports the
// fixed ClusterUnreachable message; the cause (connection refused) is in
// the operator's log at verbosity 1 and not at verbosity 0.
func TestProbeLogsTheCauseOnlyAtV1(t *testing.T) {
	closed := listen(t)
	addr := closed.Addr().String()
	_ = closed.Close()
	s := newSet(t, nil, nil)
	for _, verbose := range []bool{false, true} {
		// A cluster of its own each time: the failed probe puts the first
		// into back-off, and it would not be asked again.
		key := fmt.Sprint("ns/closed-", verbose)
		if err := s.Define(key, "closed", Definition{Config: &rest.Config{Host: "http://" + addr}}); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		logger := zap.New(zap.WriteTo(&out), zap.Level(zapcore.InfoLevel))
		if verbose {
			logger = zap.New(zap.WriteTo(&out), zap.Level(zapcore.DebugLevel))
		}
		err := s.Probe(log.IntoContext(t.Context(), logger), key)
		if reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable || err.Error() != clusterfault.Unreachable {
			t.Fatalf("Probe: %v, want the fixed %s message", err, v1alpha1.ReasonClusterUnreachable)
		}
		if logged := strings.Contains(out.String(), "connection refused"); logged != verbose {
			t.Errorf("verbose %v: cause logged %v: %s", verbose, logged, out.String())
		}
	}
}

// TestRedirectOutsideTheListIsNotFollowed: an admitted server that
// redirects to an address outside the list (as a tenant's own API server
// could, towards 169.254.169.254) leads nowhere: the redirect's
// connection is refused when dialled, and its listener sees nothing.
func TestRedirectOutsideTheListIsNotFollowed(t *testing.T) {
	inner := listenOn(t, "127.0.0.2:0")
	srv := httptest.NewServer(http.RedirectHandler("http://"+inner.Addr().String()+"/api", http.StatusFound))
	defer srv.Close()
	s := newSet(t, []string{"127.0.0.1/32"}, nil)
	if err := s.Define("ns/redirects", "r", Definition{Config: &rest.Config{Host: srv.URL}}); err != nil {
		t.Fatal(err)
	}
	err := s.Probe(t.Context(), "ns/redirects")
	if reason.Of(err, "") != v1alpha1.ReasonEndpointNotAllowed {
		t.Fatalf("Probe: %v, want %s", err, v1alpha1.ReasonEndpointNotAllowed)
	}
	if n := inner.accepted.Load(); n != 0 {
		t.Fatalf("the redirect's target saw %d connections", n)
	}
}
