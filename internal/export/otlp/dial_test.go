package otlp

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
)

// acceptCounter is a TCP listener that counts and closes every connection.
type acceptCounter struct {
	l        net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
}

func countAccepts(t *testing.T) *acceptCounter {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &acceptCounter{l: l}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			c.accepted.Add(1)
			_ = conn.Close()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); c.wg.Wait() })
	return c
}

// TestExportDialsOnlyAdmittedAddresses: a Target whose AllowAddr refuses
// the address its endpoint resolves to opens no connection, over either
// protocol; one that admits it exports as usual.
func TestExportDialsOnlyAdmittedAddresses(t *testing.T) {
	refuse := func(netip.Addr) bool { return false }
	admitLoopback := func(a netip.Addr) bool { return a.IsLoopback() }
	for _, proto := range protocols {
		t.Run(string(proto), func(t *testing.T) {
			pool := newPool(t, Options{Timeout: 2 * time.Second})
			listener := countAccepts(t)
			tgt := &datasink.Target{Protocol: proto, Insecure: true, Endpoint: listener.l.Addr().String(),
				AllowAddr: refuse, Fingerprint: "refused"}
			if proto == datasink.ProtocolHTTP {
				tgt.URLPath = metricsPath
			}
			for range 3 {
				err := pool.Export(t.Context(), "ns/refused", tgt, onePoint(1))
				if err == nil {
					t.Fatal("export to a refused address succeeded")
				}
				if proto == datasink.ProtocolHTTP && !errors.Is(err, errAddrNotAllowed) && !strings.Contains(err.Error(), errAddrNotAllowed.Error()) {
					t.Fatalf("err = %v, want the refusal", err)
				}
			}
			if n := listener.accepted.Load(); n != 0 {
				t.Fatalf("the refused address saw %d connections", n)
			}

			sink := otlpsink.Start(t)
			ok := target(sink, proto, "admitted")
			ok.AllowAddr = admitLoopback
			if err := pool.Export(t.Context(), "ns/admitted", ok, onePoint(7)); err != nil {
				t.Fatal(err)
			}
			waitForValue(t, sink, 7)
		})
	}
}

// TestExportDoesNotFollowRedirects: a sink admitted by name (no address
// check) that answers with a redirect to another address, as a tenant's
// own collector could towards 169.254.169.254, does not make the
// exporter connect there: redirects are not followed.
func TestExportDoesNotFollowRedirects(t *testing.T) {
	target := countAccepts(t)
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		srv := httptest.NewServer(http.RedirectHandler("http://"+target.l.Addr().String()+metricsPath, code))
		pool := newPool(t, Options{Timeout: 2 * time.Second})
		tgt := &datasink.Target{Protocol: datasink.ProtocolHTTP, Insecure: true,
			Endpoint: srv.Listener.Addr().String(), URLPath: metricsPath, Fingerprint: "redirects"}
		if err := pool.Export(t.Context(), "ns/redirects", tgt, onePoint(1)); err == nil {
			t.Errorf("HTTP %d: the export succeeded", code)
		}
		srv.Close()
	}
	if n := target.accepted.Load(); n != 0 {
		t.Fatalf("the redirect's target saw %d connections", n)
	}
}
