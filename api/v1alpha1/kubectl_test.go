package v1alpha1_test

import (
	"fmt"
	"io/fs"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/yaml"

	"github.com/SAP/metrics-operator/config/crd"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// crds returns the CustomResourceDefinitions `make generate` wrote.
func crds(t *testing.T) []apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	files, err := fs.Glob(crd.Bases, "bases/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	var out []apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		b, err := fs.ReadFile(crd.Bases, f)
		if err != nil {
			t.Fatal(err)
		}
		var c apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, c)
	}
	return out
}

// TestShortNamesAreUnique checks on a real API server that every kind
// has a short name and that no short name is also one of another
// resource the API server serves (ds is DaemonSet's, so DataSink's is
// dsink): kubectl expands a short name to the first resource that has
// it, so a clash would make `kubectl get` silently list another kind.
// Then kubectl itself resolves each short name to its kind.
func TestShortNamesAreUnique(t *testing.T) {
	testenv.Require(t, env)
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	_, lists, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string][]string{} // short name -> group/resource
	for _, l := range lists {
		gv := groupOf(l.GroupVersion)
		for _, r := range l.APIResources {
			for _, s := range r.ShortNames {
				owner := gv + "/" + r.Name
				if !slices.Contains(owners[s], owner) {
					owners[s] = append(owners[s], owner)
				}
			}
		}
	}
	for _, c := range crds(t) {
		names := c.Spec.Names.ShortNames
		if len(names) == 0 {
			t.Errorf("%s has no short name", c.Spec.Names.Kind)
		}
		kc := kubeconfig(t)
		for _, s := range names {
			if got := owners[s]; len(got) != 1 {
				t.Errorf("short name %q of %s is served for %v, want only %s", s, c.Spec.Names.Kind, got, c.Name)
			}
			// The API server publishes a new CRD's schema for explain a
			// moment after it installs it.
			testenv.Eventually(t, 30*time.Second, func() error {
				out, err := exec.Command(env.KubectlPath, "--kubeconfig", kc, "explain", s).CombinedOutput()
				if err != nil {
					return fmt.Errorf("kubectl explain %s: %w\n%s", s, err, out)
				}
				if kind := regexp.MustCompile(`(?m)^KIND:\s+(\S+)$`).FindStringSubmatch(string(out)); kind == nil || kind[1] != c.Spec.Names.Kind {
					return fmt.Errorf("kubectl explain %s does not explain %s:\n%s", s, c.Spec.Names.Kind, out)
				}
				return nil
			})
		}
	}
}

// groupOf returns the group of a discovery group version ("" for the
// core group).
func groupOf(gv string) string {
	g, _, found := strings.Cut(gv, "/")
	if !found {
		return ""
	}
	return g
}

// kubeconfig writes an administrator's kubeconfig for kubectl.
func kubeconfig(t *testing.T) string {
	t.Helper()
	path, err := env.WriteAdminKubeconfig(t.TempDir(), "kubectl-user")
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEveryFieldIsExplained walks each CRD's schema: every field a user
// can set or read has a description, so `kubectl explain` answers for
// all of them.
func TestEveryFieldIsExplained(t *testing.T) {
	for _, c := range crds(t) {
		for _, v := range c.Spec.Versions {
			var missing []string
			walkSchema(v.Schema.OpenAPIV3Schema, "", &missing)
			for _, p := range missing {
				t.Errorf("%s %s: field %s has no description (a doc comment on its Go field)", c.Spec.Names.Kind, v.Name, p)
			}
		}
	}
}

// walkSchema appends to missing the path of every property below s
// without a description. apiVersion, kind and metadata are Kubernetes'
// own and documented by it.
func walkSchema(s *apiextensionsv1.JSONSchemaProps, path string, missing *[]string) {
	if s == nil {
		return
	}
	for name, p := range s.Properties {
		if path == "" && (name == "apiVersion" || name == "kind" || name == "metadata") {
			continue
		}
		child := path + "." + name
		if strings.TrimSpace(p.Description) == "" {
			*missing = append(*missing, child)
		}
		walkSchema(&p, child, missing)
	}
	if s.Items != nil {
		walkSchema(s.Items.Schema, path+"[]", missing)
	}
	if s.AdditionalProperties != nil {
		walkSchema(s.AdditionalProperties.Schema, path+"{}", missing)
	}
}

// TestGetShowsValueAndReadiness checks the printer columns as a user
// sees them: `kubectl get` with a short name lists Metrics and
// ManagedMetrics with their readiness and value.
func TestGetShowsValueAndReadiness(t *testing.T) {
	testenv.Require(t, env)
	const ns = "default"
	for _, o := range []*unstructured.Unstructured{
		obj("Metric", "kubectl-columns", map[string]any{"name": "kubectl-columns", "target": goodTarget}),
		obj("ManagedMetric", "kubectl-columns", map[string]any{"name": "kubectl-columns-managed"}),
	} {
		if err := env.Client.Create(t.Context(), o); err != nil {
			t.Fatal(err)
		}
	}
	kc := kubeconfig(t)
	for _, short := range []string{"mt", "mmt"} {
		out, err := exec.Command(env.KubectlPath, "--kubeconfig", kc, "get", short, "-n", ns).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl get %s: %v\n%s", short, err, out)
		}
		header := strings.Fields(strings.SplitN(string(out), "\n", 2)[0])
		for _, col := range []string{"NAME", "READY", "VALUE", "MODE"} {
			if !slices.Contains(header, col) {
				t.Errorf("kubectl get %s: no %s column in %v", short, col, header)
			}
		}
	}
}
