package testenv

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/SAP/metrics-operator/internal/operator"
)

// Env is a running control plane.
type Env struct {
	env *envtest.Environment
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client is a client without cache for test setup and assertions.
	Client client.Client
	// KubectlPath is the kubectl built with the control plane.
	KubectlPath string
	// cleanups stop what was started beside the control plane (a second
	// API server), before it.
	cleanups []func() error
}

// RepoRoot returns the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// Start starts etcd and kube-apiserver from $KUBEBUILDER_ASSETS and
// installs the CRDs of config/crd/bases.
func Start() (*Env, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: run `make test`, or " +
			"`KUBEBUILDER_ASSETS=$(make -s controlplane) go test ./...`")
	}
	e := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                operator.NewScheme(),
	}
	cfg, err := e.Start()
	if err != nil {
		return nil, fmt.Errorf("starting control plane from %s: %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		_ = e.Stop()
		return nil, err
	}
	return &Env{env: e, Config: cfg, Client: c, KubectlPath: filepath.Join(assets, "kubectl")}, nil
}

// AddUser provisions a user of the control plane (for RBAC tests, or the
// demo's kubeconfig).
func (e *Env) AddUser(u envtest.User) (*envtest.AuthenticatedUser, error) {
	return e.env.AddUser(u, e.Config)
}

// Stop stops the control plane and what a test started beside it.
func (e *Env) Stop() error {
	var errs []error
	for _, c := range slices.Backward(e.cleanups) {
		errs = append(errs, c())
	}
	return errors.Join(append(errs, e.env.Stop())...)
}

// Setup starts what a package's tests need beside the control plane (an
// operator, say) and returns the function that stops it.
type Setup func(*Env) (stop func(), err error)

// Main is a TestMain body: it starts a control plane into *env, runs the
// setups, runs the tests and stops everything. With -short the package's
// tests run without a control plane and skip themselves through Require.
func Main(m *testing.M, env **Env, setups ...Setup) {
	os.Exit(run(m, env, setups))
}

func run(m *testing.M, env **Env, setups []Setup) int {
	flag.Parse() // testing.Short needs parsed flags; TestMain runs before m.Run parses them
	if testing.Short() {
		return m.Run()
	}
	e, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*env = e
	defer func() {
		if err := e.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping control plane:", err)
		}
	}()
	for _, setup := range setups {
		stop, err := setup(e)
		if err != nil {
			fmt.Fprintln(os.Stderr, "test setup:", err)
			return 1
		}
		defer stop()
	}
	return m.Run()
}

// Require skips t when no control plane runs (go test -short).
func Require(t testing.TB, env *Env) {
	t.Helper()
	if env == nil {
		t.Skip("needs a control plane; runs without -short")
	}
}

// WriteAdminKubeconfig provisions an administrator and writes a kubeconfig
// for it to dir/kubeconfig, for processes (the operator binary, kubectl)
// that talk to the control plane.
func (e *Env) WriteAdminKubeconfig(dir, name string) (string, error) {
	user, err := e.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}})
	if err != nil {
		return "", fmt.Errorf("creating user %s: %w", name, err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path, err := filepath.Abs(filepath.Join(dir, "kubeconfig"))
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, data, 0o600)
}
