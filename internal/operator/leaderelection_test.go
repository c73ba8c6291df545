package operator_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/scrape"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// replica is one operator process.
type replica struct {
	name       string
	cmd        *exec.Cmd
	metricsURL string
}

// TestLeaderElectionFailover runs two operator processes (the real
// binary) against one control plane: only the leader serves and pushes
// the metric; when it is killed, the other takes over with the right
// values.
func TestLeaderElectionFailover(t *testing.T) {
	testenv.Require(t, env)
	if testing.Short() {
		t.Skip("builds and runs the operator binary")
	}
	bin := filepath.Join(t.TempDir(), "metrics-operator")
	build := exec.Command("go", "build", "-o", bin, "./cmd/metrics-operator")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	kubeconfig, err := env.WriteAdminKubeconfig(t.TempDir(), "operator")
	if err != nil {
		t.Fatal(err)
	}

	sink := otlpsink.Start(t)
	ns := "leader"
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "one", Namespace: ns}})
	mustCreate(t, &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: sink.HTTPURL()}}})
	mustCreate(t, &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: "leader-count", Namespace: ns},
		Spec: v1alpha1.MetricSpec{Target: v1alpha1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns,
			EventDriven: ptr.To(true), Interval: metav1.Duration{Duration: time.Hour}}})

	start := func(name string) *replica {
		addr, err := testenv.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		log, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--kubeconfig", kubeconfig, "--leader-elect",
			"--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s", "--leader-elect-retry-period=500ms",
			"--operator-namespace="+ns, "--metrics-bind-address="+addr, "--metrics-secure=false",
			"--health-probe-bind-address=0", "--min-export-interval=200ms")
		cmd.Env = append(os.Environ(), "POD_NAME="+name)
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := &replica{name: name, cmd: cmd, metricsURL: "http://" + addr + "/metrics"}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				out, _ := os.ReadFile(log.Name())
				t.Logf("%s log:\n%s", name, out)
			}
		})
		return r
	}
	serves := func(r *replica) ([]string, error) {
		fams, err := scrape.Families(r.metricsURL)
		if err != nil {
			return nil, err
		}
		return scrape.Strings(scrape.Samples(fams, "leader_count")), nil
	}
	waitServes := func(r *replica, want ...string) {
		t.Helper()
		testenv.Eventually(t, 60*time.Second, func() error {
			got, err := serves(r)
			if err != nil {
				return err
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("%s serves %v, want %v", r.name, got, want)
			}
			return nil
		})
	}
	pushedBy := func(instance string, value int64) error {
		m, ok := sink.Latest("leader-count")
		if !ok {
			return fmt.Errorf("no push yet")
		}
		if got := m.Resource["service.instance.id"]; got != instance {
			return fmt.Errorf("latest push from %q, want %q", got, instance)
		}
		if len(m.Points) != 1 || m.Points[0].Value != value {
			return fmt.Errorf("latest push %v, want one point of %d", m.Points, value)
		}
		return nil
	}

	a := start("replica-a")
	waitServes(a, "{cluster=local,kind=ConfigMap,version=v1} 1")
	testenv.Eventually(t, 30*time.Second, func() error { return pushedBy("replica-a", 1) })

	b := start("replica-b")
	// b is up (serving /metrics) but not leading: it serves no metric and
	// pushes nothing.
	time.Sleep(3 * time.Second)
	got, err := serves(b)
	if err != nil {
		t.Fatalf("replica-b does not serve /metrics: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("the standby replica serves %v", got)
	}
	for _, batch := range sink.Received() {
		for _, m := range batch.MetricList() {
			if m.Resource["service.instance.id"] == "replica-b" {
				t.Fatalf("the standby replica pushed %s", m.Name)
			}
		}
	}

	// The leader dies without releasing its lease.
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = a.cmd.Wait()
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "two", Namespace: ns}})
	waitServes(b, "{cluster=local,kind=ConfigMap,version=v1} 2")
	testenv.Eventually(t, 30*time.Second, func() error { return pushedBy("replica-b", 2) })
}
