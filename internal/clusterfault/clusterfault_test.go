package clusterfault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/egress"
	"github.com/SAP/metrics-operator/internal/reason"
)

// TestClassify: each kind of failure of a request to a cluster gets its
// reason, no message quotes the cause, and the errors about one resource
// are told apart from those about the cluster.
func TestClassify(t *testing.T) {
	cm := schema.GroupResource{Resource: "configmaps"}
	refusedDial := &url.Error{Op: "Get", URL: "https://10.0.0.1/api",
		Err: fmt.Errorf("dial tcp 10.0.0.1:443: %w", egress.ErrAddrNotAllowed)}
	cases := []struct {
		name     string
		err      error
		want     string
		resource bool
	}{
		{"nil", nil, "", false},
		{"dial refused by the allow-list", refusedDial, v1alpha1.ReasonEndpointNotAllowed, false},
		{"already a reason", reason.New(v1alpha1.ReasonInvalidKubeConfig, "bad"), v1alpha1.ReasonInvalidKubeConfig, false},
		{"401", apierrors.NewUnauthorized("secret-token-xyz"), v1alpha1.ReasonForbidden, false},
		{"403", apierrors.NewForbidden(cm, "", errors.New("secret-token-xyz")), v1alpha1.ReasonForbidden, true},
		{"connection refused", &url.Error{Op: "Get", URL: "https://10.0.0.1/api", Err: syscall.ECONNREFUSED},
			v1alpha1.ReasonClusterUnreachable, false},
		{"timeout", &url.Error{Op: "Get", URL: "https://10.0.0.1/api", Err: context.DeadlineExceeded},
			v1alpha1.ReasonClusterUnreachable, false},
		{"server timeout", apierrors.NewTimeoutError("slow", 1), v1alpha1.ReasonClusterUnreachable, false},
		{"500", apierrors.NewInternalError(errors.New("boom")), v1alpha1.ReasonClusterUnreachable, false},
		{"429", apierrors.NewTooManyRequests("later", 1), v1alpha1.ReasonClusterUnreachable, false},
		{"not an API server", errors.New("tls: first record does not look like a TLS handshake"), v1alpha1.ReasonClusterUnreachable, false},
		{"404", apierrors.NewNotFound(cm, "x"), v1alpha1.ReasonClusterUnreachable, true},
		{"404 page", apierrors.NewGenericServerResponse(http.StatusNotFound, "get", schema.GroupResource{}, "", "404 page not found", 0, false),
			v1alpha1.ReasonClusterUnreachable, true},
		{"410", &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusGone, Reason: metav1.StatusReasonGone}},
			v1alpha1.ReasonClusterUnreachable, true},
		{"expired", apierrors.NewResourceExpired("too old"), v1alpha1.ReasonClusterUnreachable, true},
		{"405", apierrors.NewMethodNotSupported(cm, "watch"), v1alpha1.ReasonClusterUnreachable, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Classify(c.err)
			if c.err == nil {
				if got != nil {
					t.Fatalf("Classify(nil) = %v", got)
				}
				return
			}
			if r := reason.Of(got, ""); r != c.want {
				t.Errorf("reason %q (%v), want %q", r, got, c.want)
			}
			if c.want == v1alpha1.ReasonClusterUnreachable && got.Error() != Unreachable {
				t.Errorf("message %q, want the one Unreachable message", got)
			}
			if c.want != v1alpha1.ReasonInvalidKubeConfig {
				for _, leak := range []string{"10.0.0.1", "secret-token-xyz", "boom", "TLS handshake"} {
					if strings.Contains(got.Error(), leak) {
						t.Errorf("message %q quotes %q", got, leak)
					}
				}
			}
			if OfResource(c.err) != c.resource {
				t.Errorf("OfResource %v, want %v", !c.resource, c.resource)
			}
		})
	}
}

// TestUnreachableSaysTheSameWhateverTheCause: refused (a real dial of a
// closed port), timed out, an error status or a server that is no API
// server read alike, so a kubeconfig pointed at some address and port
// does not tell whether it is open.
func TestUnreachableSaysTheSameWhateverTheCause(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	_, refused := net.Dial("tcp", addr)
	if refused == nil {
		t.Fatal("a closed port accepted a connection")
	}
	causes := []error{
		refused,
		&url.Error{Op: "Get", URL: "https://10.0.0.1/api", Err: context.DeadlineExceeded},
		apierrors.NewTimeoutError("slow", 1),
		apierrors.NewInternalError(errors.New("boom")),
		apierrors.NewGenericServerResponse(http.StatusNotFound, "get", schema.GroupResource{}, "", "404 page not found", 0, false),
		apierrors.NewTooManyRequests("later", 1),
		errors.New("tls: first record does not look like a TLS handshake"),
	}
	for _, cause := range causes {
		err := Classify(cause)
		if reason.Of(err, "") != v1alpha1.ReasonClusterUnreachable || err.Error() != Unreachable {
			t.Errorf("%v: %v, want %s with the one Unreachable message", cause, err, v1alpha1.ReasonClusterUnreachable)
		}
	}
}
