package evaluation

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

// sensitive describes which parts of a value must not be read. A nil
// *sensitive is a value with nothing sensitive in it. Otherwise the value
// itself must not be selected as a whole, nor branched into (wildcards,
// recursive descent, slices, indexes, filters), and a key is sensitive
// as keys says, or, for keys not listed, when closed.
type sensitive struct {
	closed bool
	keys   map[string]*sensitive
}

// secretPayload marks what of a core/v1 Secret is payload: data and
// stringData, every top-level field not known to be harmless (so that a
// payload field added later stays unreadable), and the copy of the whole
// object, data included, that kubectl apply keeps in an annotation.
// Everything else of metadata, and type, stays readable.
var secretPayload = &sensitive{closed: true, keys: map[string]*sensitive{
	"apiVersion": nil, "kind": nil, "type": nil, "immutable": nil,
	"metadata": {keys: map[string]*sensitive{
		"annotations": {keys: map[string]*sensitive{
			"kubectl.kubernetes.io/last-applied-configuration": {closed: true},
		}},
	}},
}}

// secretHint ends every refusal.
const secretHint = "; Secret payloads (data, stringData and the copy kubectl apply keeps in the annotation " +
	"kubectl.kubernetes.io/last-applied-configuration) are never read: count and group Secrets by " +
	"their metadata or type, for example \"metadata.namespace\", \"metadata.labels.app\" or \"type\""

// isSecret reports whether target is the core Secret kind, matched as
// loosely as any resolver could match it.
func isSecret(target schema.GroupKind) bool {
	return target.Group == "" && (strings.EqualFold(target.Kind, "Secret") || strings.EqualFold(target.Kind, "secrets"))
}

// reaches reports whether a path could select anything s marks as
// sensitive. Union alternatives carry the rest of the path, so each is
// checked on its own. Filters below a key evaluate their operands
// relative to the element they test, so they cannot climb back up.
func reaches(ops []op, s *sensitive) bool {
	if s == nil {
		return false
	}
	if len(ops) == 0 {
		return true
	}
	switch o := &ops[0]; o.kind {
	case opField:
		child, named := s.keys[o.key]
		if !named {
			return s.closed
		}
		return reaches(ops[1:], child)
	case opConst:
		return false // a literal selects nothing of the object
	case opUnion:
		for _, alt := range o.union {
			if reaches(alt, s) {
				return true
			}
		}
		return false
	}
	return true
}

// fieldsReach is reaches for a field selector's dot path.
func fieldsReach(path []string, s *sensitive) bool {
	for _, k := range path {
		if s == nil {
			return false
		}
		child, named := s.keys[k]
		if !named {
			return s.closed
		}
		s = child
	}
	return s != nil
}

// checkSecretPaths refuses every path of the compiled spec that could read
// a Secret's payload. The message names the spec field and the path as
// the user wrote it, never anything read from an object.
func (e *Evaluator) checkSecretPaths(projField string) error {
	refuse := func(field, path string) error {
		return &CompileError{Reason: v1alpha1.ReasonSecretDataForbidden, Field: field,
			Message: fmt.Sprintf("the path %q can read a Secret's payload%s", path, secretHint)}
	}
	for i := range e.dims {
		if reaches(e.dims[i].path.ops, secretPayload) {
			return refuse(fmt.Sprintf("%s[%d].fieldPath", projField, i), e.dims[i].path.text)
		}
	}
	if e.value != nil && reaches(e.value.path.ops, secretPayload) {
		return refuse("spec.valueFrom.fieldPath", e.value.path.text)
	}
	for _, r := range e.fields {
		if fieldsReach(r.path, secretPayload) {
			return refuse("spec.fieldSelector", strings.Join(r.path, "."))
		}
	}
	return nil
}
