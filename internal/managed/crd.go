package managed

import (
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Bounds of what is kept per CRD. A remote cluster may be a tenant's:
// its CRDs may carry condition messages, categories, short names or
// versions by the megabyte, which the watch's store would otherwise keep
// for as long as the CRD exists. Kubernetes refuses longer names than
// these; no real CRD has more short names or served versions.
const (
	maxGroupLength = 253 // a DNS subdomain
	maxNameLength  = 63  // a DNS label: kind, plural, singular, short names, versions
	maxNames       = 32  // short names, and served versions, kept per CRD
)

// kindOf returns the managed kind a CRD defines, and false when the CRD
// is not a managed resource kind, is not served yet (not Established, or
// no version served), or has names Kubernetes would refuse. Beyond
// maxNames short names or served versions, the rest are ignored.
func kindOf(crd *unstructured.Unstructured) (Kind, bool) {
	categories, _, _ := unstructured.NestedStringSlice(crd.Object, "spec", "names", "categories")
	for _, c := range Categories {
		if !slices.Contains(categories, c) {
			return Kind{}, false
		}
	}
	if !established(crd) {
		return Kind{}, false
	}
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	singular, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "singular")
	short, _, _ := unstructured.NestedStringSlice(crd.Object, "spec", "names", "shortNames")
	scope, _, _ := unstructured.NestedString(crd.Object, "spec", "scope")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	if len(group) > maxGroupLength || !fits(kind, plural, singular) {
		return Kind{}, false
	}
	// A copy, so that the kind does not hold the CRD's whole list.
	short = slices.DeleteFunc(slices.Clone(short[:min(len(short), maxNames)]), func(s string) bool { return !fits(s) })
	k := Kind{GroupKind: schema.GroupKind{Group: group, Kind: kind}, Resource: plural, Singular: singular,
		ShortNames: short, Namespaced: scope == "Namespaced"}
	for _, v := range versions {
		m, _ := v.(map[string]any)
		if served, _ := m["served"].(bool); served {
			if name, _ := m["name"].(string); name != "" && fits(name) {
				k.Versions = append(k.Versions, name)
			}
		}
		if len(k.Versions) == maxNames {
			break
		}
	}
	if kind == "" || plural == "" || len(k.Versions) == 0 {
		return Kind{}, false
	}
	sortVersions(k.Versions)
	return k, true
}

// fits reports whether every name is no longer than a DNS label.
func fits(names ...string) bool {
	for _, n := range names {
		if len(n) > maxNameLength {
			return false
		}
	}
	return true
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" {
			return m["status"] == "True"
		}
	}
	return false
}

// strip keeps only what kindOf reads, so that the watch's store holds a
// few hundred bytes per CRD instead of its schema, and never more than
// the bounds above, whatever the CRD carries: the kind kindOf finds,
// written back as the CRD that defines just it, or only the CRD's name
// when it defines no managed kind.
func strip(obj any) (any, error) {
	crd, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil // a tombstone: its key is all that is used
	}
	out := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": crd.GetAPIVersion(),
		"kind":       crd.GetKind(),
	}}
	out.SetName(crd.GetName())
	out.SetUID(crd.GetUID())
	out.SetResourceVersion(crd.GetResourceVersion())
	k, managed := kindOf(crd)
	if !managed {
		return out, nil
	}
	names := map[string]any{"kind": k.GroupKind.Kind, "plural": k.Resource, "categories": toAny(Categories)}
	if k.Singular != "" {
		names["singular"] = k.Singular
	}
	if len(k.ShortNames) > 0 {
		names["shortNames"] = toAny(k.ShortNames)
	}
	scope := "Cluster"
	if k.Namespaced {
		scope = "Namespaced"
	}
	versions := make([]any, len(k.Versions))
	for i, v := range k.Versions {
		versions[i] = map[string]any{"name": v, "served": true}
	}
	out.Object["spec"] = map[string]any{"group": k.GroupKind.Group, "scope": scope, "names": names, "versions": versions}
	out.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Established", "status": "True"}}}
	return out, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
