package managed

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

func crd(categories []any, established string, versions ...any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "buckets.s3.example.org", "resourceVersion": "7"},
		"spec": map[string]any{
			"group": "s3.example.org", "scope": "Cluster",
			"names": map[string]any{"kind": "Bucket", "plural": "buckets", "singular": "bucket",
				"shortNames": []any{"bk"}, "categories": categories},
			"versions": versions,
		},
	}}
	if established != "" {
		u.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Established", "status": established}}}
	}
	return u
}

func ver(name string, served bool) any {
	return map[string]any{"name": name, "served": served, "storage": name == "v1beta1",
		"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "description": "large"}}}
}

var managedCategories = []any{"crossplane", "managed", "aws"}

func TestKindOf(t *testing.T) {
	tests := []struct {
		name string
		crd  *unstructured.Unstructured
		want []string // served versions, preferred first; nil: not managed
	}{
		{"managed, preferred first", crd(managedCategories, "True", ver("v1beta1", true), ver("v1", true), ver("v1alpha1", true)),
			[]string{"v1", "v1beta1", "v1alpha1"}},
		{"versions not served are left out", crd(managedCategories, "True", ver("v1beta1", true), ver("v1beta2", false)),
			[]string{"v1beta1"}},
		{"only crossplane", crd([]any{"crossplane"}, "True", ver("v1", true)), nil},
		{"only managed", crd([]any{"managed"}, "True", ver("v1", true)), nil},
		{"no categories", crd(nil, "True", ver("v1", true)), nil},
		{"not established", crd(managedCategories, "False", ver("v1", true)), nil},
		{"no status yet", crd(managedCategories, "", ver("v1", true)), nil},
		{"nothing served", crd(managedCategories, "True", ver("v1", false)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, ok := kindOf(tt.crd)
			if ok != (tt.want != nil) {
				t.Fatalf("managed = %v, want %v", ok, tt.want != nil)
			}
			if !ok {
				return
			}
			if !slices.Equal(k.Versions, tt.want) {
				t.Errorf("versions = %v, want %v", k.Versions, tt.want)
			}
			want := schema.GroupKind{Group: "s3.example.org", Kind: "Bucket"}
			if k.GroupKind != want || k.Resource != "buckets" || k.Namespaced {
				t.Errorf("kind = %+v", k)
			}
		})
	}
}

func TestStripKeepsWhatKindOfReads(t *testing.T) {
	full := crd(managedCategories, "True", ver("v1beta1", true), ver("v1beta2", true))
	slim, err := strip(full)
	if err != nil {
		t.Fatal(err)
	}
	u := slim.(*unstructured.Unstructured)
	if _, found, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "versions", "schema"); found {
		t.Error("strip kept a schema")
	}
	versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
	for _, v := range versions {
		if _, ok := v.(map[string]any)["schema"]; ok {
			t.Error("strip kept a version's schema")
		}
	}
	a, _ := kindOf(full)
	b, ok := kindOf(u)
	if !ok || !a.equal(b) || u.GetName() != full.GetName() || u.GetResourceVersion() != "7" {
		t.Errorf("stripped kind %+v (%v), full %+v", b, ok, a)
	}
	if _, err := strip("tombstone"); err != nil {
		t.Error(err)
	}
}

func TestMatch(t *testing.T) {
	k := Kind{GroupKind: schema.GroupKind{Group: "s3.example.org", Kind: "Bucket"}, Resource: "buckets",
		Singular: "bucket", ShortNames: []string{"bk"}, Versions: []string{"v1beta2", "v1beta1"}}
	tests := []struct {
		name    string
		target  *v1alpha1.ManagedTarget
		version string // "": no match
	}{
		{"no target: preferred version", nil, "v1beta2"},
		{"empty target", &v1alpha1.ManagedTarget{}, "v1beta2"},
		{"group", &v1alpha1.ManagedTarget{Group: "s3.example.org"}, "v1beta2"},
		{"other group", &v1alpha1.ManagedTarget{Group: "ec2.example.org"}, ""},
		{"group and kind", &v1alpha1.ManagedTarget{Group: "s3.example.org", Kind: "Bucket"}, "v1beta2"},
		{"kind in lower case", &v1alpha1.ManagedTarget{Kind: "bucket"}, "v1beta2"},
		{"plural", &v1alpha1.ManagedTarget{Kind: "Buckets"}, "v1beta2"},
		{"short name", &v1alpha1.ManagedTarget{Kind: "BK"}, "v1beta2"},
		{"other kind", &v1alpha1.ManagedTarget{Kind: "Queue"}, ""},
		{"served version", &v1alpha1.ManagedTarget{Group: "s3.example.org", Version: "v1beta1"}, "v1beta1"},
		{"version not served", &v1alpha1.ManagedTarget{Version: "v1"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := k.Match(tt.target)
			if ok != (tt.version != "") || v != tt.version {
				t.Errorf("Match = %q, %v; want %q", v, ok, tt.version)
			}
		})
	}
}

// TestStripBoundsWhatACRDKeeps strips CRDs as a tenant's cluster may serve
// them, swollen in every field the watch used to keep whole (condition
// messages, categories, short names, versions, unknown name fields): what
// is kept stays a few KiB, and the kind is read as before, up to
// 32 versions and short names. A CRD whose names Kubernetes would
// refuse is no managed kind and keeps only its name.
func TestStripBoundsWhatACRDKeeps(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	many := func(prefix string, n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s%d", prefix, i)
		}
		return out
	}
	swollen := func() *unstructured.Unstructured {
		var versions []any
		for _, v := range many("v", 10000) {
			versions = append(versions, ver(v.(string), true))
		}
		u := crd(append(slices.Clone(managedCategories), many("c", 10000)...), "True", versions...)
		names := u.Object["spec"].(map[string]any)["names"].(map[string]any)
		names["shortNames"], names["listKind"], names["extra"] = many("s", 10000), big, big
		u.Object["status"].(map[string]any)["conditions"] = append(u.Object["status"].(map[string]any)["conditions"].([]any),
			map[string]any{"type": "Hostile", "status": "True", "message": big})
		return u
	}
	longKind := swollen()
	longKind.Object["spec"].(map[string]any)["names"].(map[string]any)["kind"] = big

	for _, tc := range []struct {
		name    string
		crd     *unstructured.Unstructured
		managed bool
	}{{"swollen", swollen(), true}, {"kind too long", longKind, false}} {
		t.Run(tc.name, func(t *testing.T) {
			slim, err := strip(tc.crd)
			if err != nil {
				t.Fatal(err)
			}
			u := slim.(*unstructured.Unstructured)
			raw, err := json.Marshal(u.Object)
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) > 4<<10 {
				t.Errorf("strip kept %d bytes of JSON, want at most 4 KiB", len(raw))
			}
			k, ok := kindOf(u)
			if ok != tc.managed || u.GetName() != tc.crd.GetName() {
				t.Fatalf("stripped CRD %q managed = %v, want %v", u.GetName(), ok, tc.managed)
			}
			if !ok {
				return
			}
			if full, _ := kindOf(tc.crd); !full.equal(k) {
				t.Errorf("stripped kind %+v, full %+v", k, full)
			}
			if len(k.Versions) != 32 || len(k.ShortNames) != 32 || k.Versions[0] != "v31" || k.Resource != "buckets" {
				t.Errorf("kind %v with %d versions and %d short names, want 32 of each, v31 first",
					k.GroupKind, len(k.Versions), len(k.ShortNames))
			}
		})
	}
}
