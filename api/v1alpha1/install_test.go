package v1alpha1_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestInstallManifestsAreAccepted builds config/default with kubectl's
// kustomize and applies it as a server-side dry run: what users install
// must be valid.
func TestInstallManifestsAreAccepted(t *testing.T) {
	testenv.Require(t, env)
	kubeconfig, err := env.WriteAdminKubeconfig(t.TempDir(), "installer")
	if err != nil {
		t.Fatal(err)
	}
	// A dry run creates no namespace, so the namespaced objects need it.
	if err := env.Client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "metrics-operator-system"}}); err != nil {
		t.Fatal(err)
	}
	built, err := exec.Command(env.KubectlPath, "kustomize", filepath.Join(testenv.RepoRoot(), "config", "default")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v", err)
	}
	apply := exec.Command(env.KubectlPath, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "-f", "-")
	apply.Stdin = bytes.NewReader(built)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply --dry-run=server: %v\n%s", err, out)
	}
}
