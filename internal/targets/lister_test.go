package targets

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/restmapper"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

// discoveryMapper is a REST mapper built the way client-go builds one
// from an API server's discovery documents.
func discoveryMapper() meta.RESTMapper {
	return restmapper.NewDiscoveryRESTMapper([]*restmapper.APIGroupResources{
		{
			Group: metav1.APIGroup{Name: "", Versions: []metav1.GroupVersionForDiscovery{{Version: "v1"}},
				PreferredVersion: metav1.GroupVersionForDiscovery{Version: "v1"}},
			VersionedResources: map[string][]metav1.APIResource{"v1": {
				{Name: "pods", SingularName: "pod", Kind: "Pod", Namespaced: true},
				{Name: "configmaps", SingularName: "configmap", Kind: "ConfigMap", Namespaced: true},
				{Name: "namespaces", SingularName: "namespace", Kind: "Namespace"},
			}},
		},
		{
			Group: metav1.APIGroup{Name: "example.com", Versions: []metav1.GroupVersionForDiscovery{{Version: "v1"}},
				PreferredVersion: metav1.GroupVersionForDiscovery{Version: "v1"}},
			VersionedResources: map[string][]metav1.APIResource{"v1": {
				{Name: "widgetsets", SingularName: "widgetset", Kind: "WidgetSet", Namespaced: true},
			}},
		},
	})
}

// countingMapper counts the lookups that miss, which a discovery-backed
// mapper answers with a discovery request.
type countingMapper struct {
	meta.RESTMapper
	misses int
}

func (m *countingMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	r, err := m.RESTMapper.RESTMapping(gk, versions...)
	if err != nil {
		m.misses++
	}
	return r, err
}

// TestMappingMatchesKindsAsKubectlDoes: the kind as the API spells it, in
// any case, or a singular or plural resource name in any case.
func TestMappingMatchesKindsAsKubectlDoes(t *testing.T) {
	tests := []struct {
		group, kind string
		want        string // resource; "" for TargetNotFound
	}{
		{"", "Pod", "pods"},
		{"", "pod", "pods"},
		{"", "POD", "pods"},
		{"", "pods", "pods"},
		{"", "Pods", "pods"},
		{"", "ConfigMap", "configmaps"},
		{"", "configmap", "configmaps"},
		{"", "configMaps", "configmaps"},
		{"", "namespace", "namespaces"},
		{"example.com", "WidgetSet", "widgetsets"},
		{"example.com", "widgetset", "widgetsets"},
		{"example.com", "widgetSets", "widgetsets"},
		{"", "Widget", ""},
		{"", "WidgetSet", ""},      // right kind, wrong group
		{"example.com", "pod", ""}, // right name, wrong group
		{"", "cm", ""},             // short names are not matched
	}
	l := NewLister(discoveryMapper(), nil)
	for _, tt := range tests {
		gvk := schema.GroupVersionKind{Group: tt.group, Version: "v1", Kind: tt.kind}
		m, err := l.Mapping(gvk)
		if tt.want == "" {
			if reason.Of(err, "") != v1alpha1.ReasonTargetNotFound {
				t.Errorf("%s: got %v, %v; want TargetNotFound", gvk, m, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", gvk, err)
			continue
		}
		if m.Resource.Resource != tt.want || m.Resource.Group != tt.group {
			t.Errorf("%s: resource %s, want %s", gvk, m.Resource, tt.want)
		}
		if want := kindOf[tt.want]; m.GroupVersionKind.Kind != want {
			t.Errorf("%s: mapping names the kind %q, want %q", gvk, m.GroupVersionKind.Kind, want)
		}
	}
}

var kindOf = map[string]string{"pods": "Pod", "configmaps": "ConfigMap", "namespaces": "Namespace", "widgetsets": "WidgetSet"}

// echoMapper matches kinds regardless of case and names the kind in its
// mapping as it was asked for, as controller-runtime's mapper does.
type echoMapper struct{ meta.RESTMapper }

func (m echoMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	for _, canonical := range kindOf {
		if strings.EqualFold(canonical, gk.Kind) {
			r, err := m.RESTMapper.RESTMapping(schema.GroupKind{Group: gk.Group, Kind: canonical}, versions...)
			if err == nil {
				c := *r
				c.GroupVersionKind.Kind = gk.Kind
				return &c, nil
			}
			return nil, err
		}
	}
	return m.RESTMapper.RESTMapping(gk, versions...)
}

// TestMappingNamesTheKindAsTheAPIServerDoes: whatever spelling the mapper
// echoes, the mapping carries the kind as discovery names it.
func TestMappingNamesTheKindAsTheAPIServerDoes(t *testing.T) {
	l := NewLister(echoMapper{discoveryMapper()}, nil)
	for _, kind := range []string{"configmap", "CONFIGMAP", "ConfigMap"} {
		m, err := l.Mapping(schema.GroupVersionKind{Version: "v1", Kind: kind})
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if m.GroupVersionKind.Kind != "ConfigMap" {
			t.Errorf("%s: mapping names the kind %q, want ConfigMap", kind, m.GroupVersionKind.Kind)
		}
	}
}

// TestMappingRemembersAliases: a kind written otherwise than the API
// spells it misses the mapper once, not at every poll.
func TestMappingRemembersAliases(t *testing.T) {
	cm := &countingMapper{RESTMapper: discoveryMapper()}
	l := NewLister(cm, nil)
	for range 5 {
		if _, err := l.Mapping(schema.GroupVersionKind{Version: "v1", Kind: "Pods"}); err != nil {
			t.Fatal(err)
		}
	}
	if cm.misses != 1 {
		t.Errorf("%d misses, want 1", cm.misses)
	}
}
