package clusterfault

import (
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/egress"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/remotelimit"
)

// Unreachable is the one message of every ClusterUnreachable error
// Classify returns, whatever the failure (refused, timed out, no route,
// not an API server, an error status).
const Unreachable = "the remote API server cannot be reached or does not answer as a Kubernetes API server " +
	"(refused, timed out, DNS, TLS or an error status): check the server URL, its CA and the network; " +
	"the operator logs the cause at verbosity 1"

// Classify returns the condition err causes as a reason error: nil for
// nil; the *remotelimit.Error of a response over its size limit
// (ResponseTooLarge), without what client-go wrapped it in; err itself
// when it already carries a reason; EndpointNotAllowed for a connection
// the allow-list refused when dialling; Forbidden for a 401 or 403; else
// ClusterUnreachable with the Unreachable message.
func Classify(err error) error {
	switch {
	case err == nil:
		return nil
	case remotelimit.As(err) != nil:
		return remotelimit.As(err)
	case errors.Is(err, egress.ErrAddrNotAllowed):
		return reason.New(v1alpha1.ReasonEndpointNotAllowed,
			"the cluster's API server now resolves to an address the operator's --cluster-allowed-endpoints does not admit, "+
				"so the operator does not connect to it: ask the platform admin which cluster endpoints are allowed")
	case reason.Is(err):
		return err
	case apierrors.IsUnauthorized(err):
		return reason.New(v1alpha1.ReasonForbidden,
			"the remote API server does not accept the credentials (401 Unauthorized): renew them, or check the token's audience")
	case apierrors.IsForbidden(err):
		return reason.New(v1alpha1.ReasonForbidden,
			"the remote API server refuses the identity the credentials carry (403): grant it read access in the remote cluster's RBAC")
	}
	return reason.New(v1alpha1.ReasonClusterUnreachable, Unreachable)
}

// OfResource reports whether err is about the resource a request named
// rather than about the cluster: not served (404), forbidden for that
// resource (403), a resource version gone or expired, a verb or request
// the resource does not take. A watch handles these for its resource
// alone; the others mean the cluster as a whole cannot be read.
func OfResource(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsGone(err) ||
		apierrors.IsResourceExpired(err) || apierrors.IsMethodNotSupported(err) || apierrors.IsInvalid(err)
}
