package reason

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

// ForbiddenTarget is the Forbidden error of a target the operator may not
// read with verbs. Its message names the verbs, the resource and the
// ClusterRole label that grants them, so a platform admin can act on it
// without reading the operator's manifests.
func ForbiddenTarget(gr schema.GroupResource, verbs ...string) *Error {
	return &Error{Reason: v1alpha1.ReasonForbidden, Message: fmt.Sprintf(
		"the operator may not %s %s: grant it with a ClusterRole labelled %s: \"true\" "+
			"with the rule {apiGroups: [%q], resources: [%s], verbs: [get, list, watch]}",
		strings.Join(verbs, " and "), gr.String(), v1alpha1.AggregateToOperatorLabel, gr.Group, gr.Resource)}
}

// ForbiddenRemoteTarget is the Forbidden error of a target of a remote
// cluster: what the operator may read there is decided by that cluster's
// RBAC for the identity of the RemoteClusterAccess, not by the local
// ClusterRole.
func ForbiddenRemoteTarget(gr schema.GroupResource, verbs ...string) *Error {
	return &Error{Reason: v1alpha1.ReasonForbidden, Message: fmt.Sprintf(
		"the remote cluster does not let the RemoteClusterAccess's identity %s %s: grant it get, list and watch on it in the remote cluster's RBAC",
		strings.Join(verbs, " and "), gr.String())}
}
