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
