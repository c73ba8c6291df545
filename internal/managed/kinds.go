package managed

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

// Categories are the CRD categories that make a kind a managed resource
// kind; a CRD must carry all of them.
var Categories = []string{"crossplane", "managed"}

// Kind is one managed resource kind a cluster serves.
type Kind struct {
	GroupKind schema.GroupKind
	// Resource is the plural resource name.
	Resource string
	// Singular and ShortNames are the other names kubectl accepts.
	Singular   string
	ShortNames []string
	// Namespaced is false for cluster-scoped kinds (most managed kinds).
	Namespaced bool
	// Versions are the served versions, the preferred one first (the order
	// API discovery gives them).
	Versions []string
}

// GVR returns the kind's resource in version.
func (k Kind) GVR(version string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: k.GroupKind.Group, Version: version, Resource: k.Resource}
}

// Match reports whether t selects the kind, and the one version to read
// it in: t's version when given (a kind that does not serve it does not
// match), else the preferred version. Reading one version per kind is
// what makes each object count once, however many versions its CRD
// serves. A nil t selects every kind. The kind is matched as kubectl
// matches it: kind, plural, singular or short name, in any case.
func (k Kind) Match(t *v1alpha1.ManagedTarget) (version string, ok bool) {
	if len(k.Versions) == 0 {
		return "", false
	}
	if t == nil {
		return k.Versions[0], true
	}
	if t.Group != "" && t.Group != k.GroupKind.Group {
		return "", false
	}
	if t.Kind != "" && !k.namedBy(t.Kind) {
		return "", false
	}
	if t.Version == "" {
		return k.Versions[0], true
	}
	if slices.Contains(k.Versions, t.Version) {
		return t.Version, true
	}
	return "", false
}

func (k Kind) namedBy(name string) bool {
	if strings.EqualFold(name, k.GroupKind.Kind) || strings.EqualFold(name, k.Resource) || strings.EqualFold(name, k.Singular) {
		return true
	}
	return slices.ContainsFunc(k.ShortNames, func(s string) bool { return strings.EqualFold(name, s) })
}

// equal reports whether two kinds are read alike.
func (k Kind) equal(o Kind) bool {
	return k.GroupKind == o.GroupKind && k.Resource == o.Resource && k.Singular == o.Singular &&
		k.Namespaced == o.Namespaced && slices.Equal(k.ShortNames, o.ShortNames) && slices.Equal(k.Versions, o.Versions)
}

// sortVersions orders versions as API discovery does: GA before beta
// before alpha, higher numbers first, others alphabetically last.
func sortVersions(vs []string) {
	slices.SortFunc(vs, func(a, b string) int { return -version.CompareKubeAwareVersionStrings(a, b) })
}
