package v1alpha1_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestInstallManifestsAreAccepted builds config/default with kubectl's
// kustomize and applies it as a server-side dry run: what users install
// must be valid.
func TestInstallManifestsAreAccepted(t *testing.T) {
	testenv.Require(t, env)
	user, err := env.AddUser(envtest.User{Name: "installer", Groups: []string{"system:masters"}})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
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
