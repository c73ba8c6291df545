package clusters

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/rest"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

// TestConnectionLifecycle follows one remote cluster's connection through
// the Set: shared by its users, swapped token in place, rebuilt on a new
// endpoint, closed with its last user or when its definition fails.
// Nothing here contacts an API server: clients and mappers connect
// lazily.
func TestConnectionLifecycle(t *testing.T) {
	var restarts, closes []string
	s, err := New(Options{Local: &rest.Config{Host: "https://local"}, LocalName: "local",
		LocalMapper: meta.NewDefaultRESTMapper(nil),
		Restart:     func(k string) { restarts = append(restarts, k) },
		Closed:      func(k string) { closes = append(closes, k) }})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.Acquire("local", "m0"); err != nil || c != s.Local() || c.Remote {
		t.Fatalf("local: %v %v", c, err)
	}
	if _, err := s.Acquire("ns/blue", "m1"); reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable {
		t.Fatalf("undefined cluster: %v", err)
	}
	def := func(host, token string) Definition {
		return Definition{Config: &rest.Config{Host: host}, Token: token}
	}
	if err := s.Define("ns/blue", "blue", def("https://blue", "t1")); err != nil {
		t.Fatal(err)
	}
	if len(s.Open()) != 0 {
		t.Fatal("a definition alone opened a connection: connections are made when first needed")
	}
	c1, err := s.Acquire("ns/blue", "m1")
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := s.Acquire("ns/blue", "m2")
	if c1 != c2 || c1.Name != "blue" || c1.Key != "ns/blue" || !c1.Remote || !c1.Clients.ReportUnreachable {
		t.Fatalf("two users got %p and %p (%+v)", c1, c2, c1)
	}
	if got := s.Open()["ns/blue"]; got != 2 {
		t.Fatalf("users %d, want 2", got)
	}

	_ = s.Define("ns/blue", "blue", def("https://blue", "t2"))
	if c, _ := s.Acquire("ns/blue", "m1"); c != c1 || len(restarts) != 0 {
		t.Fatalf("a renewed token rebuilt the connection (restarts %v)", restarts)
	}
	if got := s.entries["ns/blue"].token.Get(); got != "t2" {
		t.Fatalf("token %q, want the renewed one", got)
	}

	_ = s.Define("ns/blue", "blue", def("https://blue-2", "t2"))
	c3, _ := s.Acquire("ns/blue", "m1")
	if c3 == c1 || len(restarts) != 1 {
		t.Fatalf("a new endpoint did not rebuild the connection and restart its watches (restarts %v)", restarts)
	}

	s.Release("m1")
	if len(closes) != 0 {
		t.Fatal("closed while m2 still reads the cluster")
	}
	// A user moving to the local cluster gives back the remote one.
	_, _ = s.Acquire("local", "m2")
	if len(closes) != 1 || len(s.Open()) != 0 {
		t.Fatalf("last user gone: closes %v, open %v", closes, s.Open())
	}

	if _, err := s.Acquire("ns/blue", "m1"); err != nil {
		t.Fatal(err)
	}
	s.Fail("ns/blue", reason.New(v1alpha1.ReasonSecretNotFound, "gone"))
	if len(closes) != 2 {
		t.Fatalf("a failed definition left its connection open (closes %v)", closes)
	}
	_, err = s.Acquire("ns/blue", "m1")
	if reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable {
		t.Fatalf("failed cluster: %v", err)
	}
	if want := "(SecretNotFound)"; !strings.Contains(err.Error(), want) {
		t.Errorf("message %q does not name the access's reason", err)
	}
	s.Remove("ns/blue")
	if _, ok := s.entries["ns/blue"]; ok {
		t.Error("removed cluster still defined")
	}
}

// TestUnusableTLSIsInvalidKubeConfig: key material that does not parse
// fails the definition without repeating the TLS library's message.
func TestUnusableTLSIsInvalidKubeConfig(t *testing.T) {
	s, err := New(Options{Local: &rest.Config{Host: "https://local"}, LocalName: "local", LocalMapper: meta.NewDefaultRESTMapper(nil)})
	if err != nil {
		t.Fatal(err)
	}
	const key = "not-a-key-M4terial"
	err = s.Define("ns/x", "x", Definition{Config: &rest.Config{Host: "https://x",
		TLSClientConfig: rest.TLSClientConfig{CertData: []byte(key), KeyData: []byte(key)}}})
	if reason.Of(err, "") != v1alpha1.ReasonInvalidKubeConfig || strings.Contains(err.Error(), key) {
		t.Fatalf("Define: %v", err)
	}
	if _, err := s.Acquire("ns/x", "m"); !strings.Contains(fmt.Sprint(err), "(InvalidKubeConfig)") {
		t.Fatalf("Acquire: %v", err)
	}
}
