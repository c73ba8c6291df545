package informers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// metadataMap returns an object's metadata as the evaluation engine reads
// it: what runtime.DefaultUnstructuredConverter.ToUnstructured makes of
// it, less managedFields, which no metric reads. The converter walks the
// struct by reflection and converts managedFields only for them to be
// dropped: for a ConfigMap's metadata, 36 allocations and five times the
// time of this (BenchmarkMetadataConverter, BenchmarkMetadataMap), about
// a second of CPU per 100,000 objects a metadata-only watch lists.
// TestMetadataMapMatchesConverter holds the two equal, and
// TestMetadataMapKnowsEveryField fails when ObjectMeta gains a field this
// does not know. selfLink is left out: API servers have not set it since
// Kubernetes 1.20.
func metadataMap(m *metav1.ObjectMeta) map[string]any {
	out := make(map[string]any, 8)
	putString(out, "name", m.Name)
	putString(out, "generateName", m.GenerateName)
	putString(out, "namespace", m.Namespace)
	putString(out, "uid", string(m.UID))
	putString(out, "resourceVersion", m.ResourceVersion)
	if m.Generation != 0 {
		out["generation"] = m.Generation
	}
	if !m.CreationTimestamp.IsZero() {
		out["creationTimestamp"] = m.CreationTimestamp.ToUnstructured()
	}
	if m.DeletionTimestamp != nil {
		out["deletionTimestamp"] = m.DeletionTimestamp.ToUnstructured()
	}
	if m.DeletionGracePeriodSeconds != nil {
		out["deletionGracePeriodSeconds"] = *m.DeletionGracePeriodSeconds
	}
	putStrings(out, "labels", m.Labels)
	putStrings(out, "annotations", m.Annotations)
	if len(m.OwnerReferences) > 0 {
		refs := make([]any, len(m.OwnerReferences))
		for i, r := range m.OwnerReferences {
			ref := map[string]any{"apiVersion": r.APIVersion, "kind": r.Kind, "name": r.Name, "uid": string(r.UID)}
			if r.Controller != nil {
				ref["controller"] = *r.Controller
			}
			if r.BlockOwnerDeletion != nil {
				ref["blockOwnerDeletion"] = *r.BlockOwnerDeletion
			}
			refs[i] = ref
		}
		out["ownerReferences"] = refs
	}
	if len(m.Finalizers) > 0 {
		fs := make([]any, len(m.Finalizers))
		for i, f := range m.Finalizers {
			fs[i] = f
		}
		out["finalizers"] = fs
	}
	return out
}

// putString sets key to s unless s is empty (omitempty).
func putString(out map[string]any, key, s string) {
	if s != "" {
		out[key] = s
	}
}

// putStrings sets key to a copy of m unless m is empty (omitempty).
func putStrings(out map[string]any, key string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	out[key] = c
}
