package evaluation

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

var (
	secretKind    = schema.GroupKind{Kind: "Secret"}
	configMapKind = schema.GroupKind{Kind: "ConfigMap"}
)

// TestSecretPayloadPathsRefused covers every way the JSONPath subset can
// select something: only paths that provably stay in a Secret's metadata
// (outside kubectl's copy of the object) or type are accepted.
func TestSecretPayloadPathsRefused(t *testing.T) {
	refused := []string{
		".", "$", "@", "{.}",
		"data", "data.password", "{.data.password}", "data['password']", ".stringData.token", "stringData",
		"*", "..password", "{..password}", "[*]", "[0]", "[0:1]", "[?(@.password)]", "[?(@=='x')]",
		"['data']", `["stringData"]`, "['metadata','data']", "metadata['name','annotations']",
		"spec", "status.anything", // not a Secret field today; payload if it ever is
		"metadata", "metadata.*", "metadata..x", "metadata[*]",
		"metadata.annotations", "metadata.annotations.*", "metadata.annotations..x",
		"metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']",
		`metadata.annotations.kubectl\.kubernetes\.io/last-applied-configuration`,
		"metadata.annotations[?(@=='x')]",
	}
	allowed := []string{
		"metadata.name", "metadata.namespace", "{.metadata.labels.app}", "metadata.labels", "metadata.labels.*",
		"metadata.labels['app.kubernetes.io/name']", "metadata.annotations['example.com/owner']",
		"metadata.creationTimestamp", "metadata.ownerReferences[0].name",
		"metadata.ownerReferences[?(@.kind=='Deployment')].name", "metadata.managedFields[0].manager",
		// A filter's operands, $ included, are read from the element it tests.
		"metadata.ownerReferences[?(@.name==$.data.password)].uid",
		"type", "immutable", "kind", "apiVersion", "metadata['name','labels']",
	}
	for _, path := range refused {
		for _, spec := range []Spec{
			{Projections: []v1alpha1.Projection{{Name: "ok", FieldPath: "metadata.name"}, {Name: "x", FieldPath: path}}},
			{Projections: []v1alpha1.Projection{{Name: "x", FieldPath: path, Type: v1alpha1.ProjectionMap}}},
			{ValueFrom: &v1alpha1.ValueFrom{FieldPath: path}},
		} {
			spec.Target = secretKind
			_, err := Compile(spec)
			var ce *CompileError
			if !errors.As(err, &ce) || ce.Reason != v1alpha1.ReasonSecretDataForbidden {
				t.Errorf("path %q on a Secret: err = %v, want %s", path, err, v1alpha1.ReasonSecretDataForbidden)
				continue
			}
			if !strings.HasSuffix(ce.Field, ".fieldPath") || !strings.Contains(ce.Message, strconv.Quote(path)) {
				t.Errorf("path %q: field %q, message %q; want the fieldPath field and the path as written", path, ce.Field, ce.Message)
			}
			// The same path is fine on other kinds.
			spec.Target = configMapKind
			if _, err := Compile(spec); err != nil && strings.Contains(err.Error(), "Secret") {
				t.Errorf("path %q on a ConfigMap: %v", path, err)
			}
		}
	}
	for _, path := range allowed {
		spec := Spec{Target: secretKind, Projections: []v1alpha1.Projection{{Name: "x", FieldPath: path}},
			ValueFrom: &v1alpha1.ValueFrom{FieldPath: path}}
		if _, err := Compile(spec); err != nil {
			t.Errorf("path %q on a Secret: %v", path, err)
		}
	}
}

func TestSecretFieldSelectorsRefused(t *testing.T) {
	for sel, ok := range map[string]bool{
		"type=kubernetes.io/tls":                   true,
		"metadata.name=x,metadata.labels.app!=web": true,
		"data.password=hunter2":                    false,
		"stringData.x=y":                           false,
		"metadata.annotations=x":                   false,
		"metadata=x":                               false,
		"spec.x=y":                                 false,
	} {
		_, err := Compile(Spec{Target: secretKind, FieldSelector: sel})
		if got := err == nil; got != ok {
			t.Errorf("field selector %q on a Secret: err = %v, want ok %v", sel, err, ok)
		}
		if err != nil && (reasonOf(err) != v1alpha1.ReasonSecretDataForbidden || strings.Contains(err.Error(), "hunter2")) {
			t.Errorf("field selector %q: %v", sel, err)
		}
	}
}

func TestSecretKindMatching(t *testing.T) {
	for _, gk := range []schema.GroupKind{{Kind: "Secret"}, {Kind: "secret"}, {Kind: "secrets"}} {
		if _, err := Compile(Spec{Target: gk, Projections: []v1alpha1.Projection{{Name: "x", FieldPath: "data"}}}); err == nil {
			t.Errorf("%v: data projection accepted", gk)
		}
	}
	if _, err := Compile(Spec{Target: schema.GroupKind{Group: "example.com", Kind: "Secret"},
		Projections: []v1alpha1.Projection{{Name: "x", FieldPath: "data"}}}); err != nil {
		t.Errorf("a Secret kind of another group is not the core Secret: %v", err)
	}
}

func reasonOf(err error) string {
	var ce *CompileError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return ""
}

// secretObject is a Secret with the marker in every place its payload
// can be: data, stringData and kubectl's copy of the object.
const secretObject = `{"apiVersion":"v1","kind":"Secret","type":"Opaque",
 "metadata":{"name":"s","namespace":"b","labels":{"app":"x"},
  "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"data\":{\"password\":\"TUFSS0VS\"}}"},
  "managedFields":[{"manager":"kubectl","fieldsV1":{"f:data":{"f:password":{}}}}]},
 "data":{"password":"TUFSS0VS","list":["TUFSS0VS"]},"stringData":{"token":"MARKER"}}`

// FuzzSecretPaths checks the refusal against evaluation: whatever path a
// Secret metric may use, no dimension or value it yields holds the
// payload (MARKER, or TUFSS0VS, its base64).
func FuzzSecretPaths(f *testing.F) {
	for _, p := range []string{"metadata.name", "type", "data.password", "..password", "metadata.annotations",
		"metadata['name','annotations']", "metadata.managedFields[0].fieldsV1", "[*]", "metadata.*"} {
		f.Add(p, uint8(0))
	}
	f.Fuzz(func(t *testing.T, path string, typ uint8) {
		e, err := Compile(Spec{Target: secretKind, Projections: []v1alpha1.Projection{
			{Name: "d", FieldPath: path, Type: fuzzProjectionTypes[int(typ)%len(fuzzProjectionTypes)]}},
			ValueFrom: &v1alpha1.ValueFrom{FieldPath: path, Type: fuzzValueTypes[int(typ/8)%len(fuzzValueTypes)]}})
		if err != nil {
			return
		}
		c, cerr := e.Contribute(object(t, secretObject))
		out := fmt.Sprint(c, cerr)
		if strings.Contains(out, "MARKER") || strings.Contains(out, "TUFSS0VS") {
			t.Fatalf("path %q reads the payload: %s", path, out)
		}
	})
}
