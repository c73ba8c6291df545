package managed

import (
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// kindOf returns the managed kind a CRD defines, and false when the CRD
// is not a managed resource kind or is not served yet (not Established,
// or no version served).
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
	k := Kind{GroupKind: schema.GroupKind{Group: group, Kind: kind}, Resource: plural, Singular: singular,
		ShortNames: short, Namespaced: scope == "Namespaced"}
	for _, v := range versions {
		m, _ := v.(map[string]any)
		if served, _ := m["served"].(bool); served {
			if name, _ := m["name"].(string); name != "" {
				k.Versions = append(k.Versions, name)
			}
		}
	}
	if kind == "" || plural == "" || len(k.Versions) == 0 {
		return Kind{}, false
	}
	sortVersions(k.Versions)
	return k, true
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
// few hundred bytes per CRD instead of its schema.
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
	spec, _ := crd.Object["spec"].(map[string]any)
	for _, f := range []string{"group", "scope", "names"} {
		if v, ok := spec[f]; ok {
			_ = unstructured.SetNestedField(out.Object, v, "spec", f)
		}
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	slim := make([]any, 0, len(versions))
	for _, v := range versions {
		m, _ := v.(map[string]any)
		slim = append(slim, map[string]any{"name": m["name"], "served": m["served"]})
	}
	_ = unstructured.SetNestedSlice(out.Object, slim, "spec", "versions")
	if conds, ok, _ := unstructured.NestedSlice(crd.Object, "status", "conditions"); ok {
		_ = unstructured.SetNestedSlice(out.Object, conds, "status", "conditions")
	}
	return out, nil
}
