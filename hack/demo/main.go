// Command demo brings up everything `make demo` shows: a local control
// plane (etcd and kube-apiserver) with the CRDs, an OTLP receiver that
// prints what it receives, the sample objects, metrics and DataSink, and
// the operator binary itself. Ctrl-C stops all of it; nothing is left
// running.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

func main() {
	var (
		operatorBin = flag.String("operator", "bin/metrics-operator", "operator binary to run")
		metricsAddr = flag.String("metrics-addr", "127.0.0.1:8080", "where the operator serves /metrics")
		otlpHTTP    = flag.String("otlp-http", "127.0.0.1:4318", "where the demo's OTLP/HTTP receiver listens")
		otlpGRPC    = flag.String("otlp-grpc", "127.0.0.1:4317", "where the demo's OTLP/gRPC receiver listens")
		workDir     = flag.String("dir", "bin/demo", "where the kubeconfig and the operator's log are written")
		duration    = flag.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	)
	flag.Parse()
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cancel := context.CancelFunc(func() {})
	if *duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, *duration)
	}
	err := run(ctx, *operatorBin, *metricsAddr, *otlpHTTP, *otlpGRPC, *workDir)
	cancel()
	stopSignals()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, operatorBin, metricsAddr, otlpHTTP, otlpGRPC, workDir string) error {
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return err
	}
	step("Starting the OTLP receiver on %s (HTTP) and %s (gRPC)", otlpHTTP, otlpGRPC)
	sink, err := otlpsink.Listen(otlpGRPC, otlpHTTP, otlpsink.WithOnBatch(printBatch))
	if err != nil {
		return fmt.Errorf("OTLP receiver: %w", err)
	}
	defer sink.Stop()

	step("Starting a local control plane (etcd, kube-apiserver) with the CRDs")
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() {
		step("Stopping the control plane")
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stopping control plane:", err)
		}
	}()
	kubeconfig, err := env.WriteAdminKubeconfig(workDir, "demo-admin")
	if err != nil {
		return err
	}

	planes, err := startPlanes(ctx, env, workDir)
	if err != nil {
		return err
	}
	defer func() {
		for _, p := range planes {
			if err := p.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "demo: stopping a control plane:", err)
			}
		}
	}()

	step("Creating the sample objects, Metrics and the default DataSink (config/samples)")
	samples := filepath.Join(testenv.RepoRoot(), "config", "samples")
	for _, f := range []string{"00_demo_objects.yaml", "datasink_default.yaml", "metric_*.yaml", "federatedmetric_*.yaml"} {
		files, _ := filepath.Glob(filepath.Join(samples, f))
		for _, file := range files {
			if out, err := kubectl(env, kubeconfig, "apply", "-f", file).CombinedOutput(); err != nil {
				return fmt.Errorf("kubectl apply -f %s: %w\n%s", file, err, out)
			}
		}
	}

	logPath := filepath.Join(workDir, "operator.log")
	step("Starting the operator (log: %s)", logPath)
	op, err := startOperator(operatorBin, kubeconfig, metricsAddr, logPath)
	if err != nil {
		return err
	}
	defer func() {
		step("Stopping the operator")
		_ = op.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = op.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = op.Process.Kill()
			<-done
		}
	}()

	fmt.Printf(`
The demo is running. Try, in another terminal:

  curl -s http://%[1]s/metrics | grep '^demo_'
  %[2]s --kubeconfig %[3]s get metrics,datasinks -A
  %[2]s --kubeconfig %[3]s label configmap -n demo unowned-config team=web
  bin/metrics-operator preview -f config/samples/metric_deployment_replicas.yaml --kubeconfig %[3]s
  %[2]s --kubeconfig %[3]s get federatedmetrics,federatedclusteraccesses -A
  %[2]s --kubeconfig %[4]s label configmap -n demo settings team=db --overwrite

demo_configmaps is event-driven: the label change shows on /metrics at once
and is pushed within 2s. The other metrics poll every 30s.
demo_federated_configmaps counts the ConfigMaps of two more control planes
(plane-a, plane-b), each under its own cluster label; the last command
changes one on plane-a.
OTLP pushes arrive below as they come. Press Ctrl-C to stop everything.

`, metricsAddr, env.KubectlPath, kubeconfig, filepath.Join(workDir, "plane-a", "kubeconfig"))
	<-ctx.Done()
	return nil
}

// startPlanes starts two more control planes, plane-a and plane-b, with
// ConfigMaps in namespace demo, and creates in env the ConfigMaps through
// which the sample FederatedClusterAccess discovers them.
func startPlanes(ctx context.Context, env *testenv.Env, workDir string) ([]*testenv.Env, error) {
	step("Starting two more control planes, plane-a and plane-b, for the FederatedMetric")
	var planes []*testenv.Env
	teams := map[string][]string{"plane-a": {"web", "web"}, "plane-b": {"web", "db", "db"}}
	for _, name := range []string{"plane-a", "plane-b"} {
		p, err := testenv.Start()
		if err != nil {
			return planes, err
		}
		planes = append(planes, p)
		dir := filepath.Join(workDir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return planes, err
		}
		path, err := p.WriteAdminKubeconfig(dir, "demo-"+name)
		if err != nil {
			return planes, err
		}
		kc, err := os.ReadFile(path)
		if err != nil {
			return planes, err
		}
		objs := []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}},
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "demo"}}}
		for i, team := range teams[name] {
			objs = append(objs, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("config-%d", i),
				Namespace: "demo", Labels: map[string]string{"team": team}}})
		}
		for _, o := range objs {
			if err := p.Client.Create(ctx, o); err != nil {
				return planes, fmt.Errorf("%s: %w", name, err)
			}
		}
		// The demo's own cluster stands for an inventory of clusters.
		if err := env.Client.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"metrics.cloud.sap/demo-plane": "true"}},
			Data:       map[string]string{"kubeconfig": string(kc)},
		}); err != nil {
			return planes, err
		}
	}
	return planes, nil
}

func step(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}

func kubectl(env *testenv.Env, kubeconfig string, args ...string) *exec.Cmd {
	return exec.Command(env.KubectlPath, append([]string{"--kubeconfig", kubeconfig}, args...)...)
}

func startOperator(bin, kubeconfig, metricsAddr, logPath string) (*exec.Cmd, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("operator binary %s: %w (run `make build`)", bin, err)
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin,
		"--kubeconfig", kubeconfig,
		"--metrics-bind-address", metricsAddr,
		"--metrics-secure=false",
		"--health-probe-bind-address", "127.0.0.1:0",
		"--min-export-interval", "2s",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the demo dies without cleaning up, the kernel stops the operator.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, errors.Join(err, logFile.Close())
	}
	return cmd, nil
}

// printBatch prints one received OTLP request: metric, attributes, value.
func printBatch(b otlpsink.Batch) {
	for _, m := range b.MetricList() {
		fmt.Printf("[otlp %s] %s (%s, %d points)\n", b.Time.Format("15:04:05"), m.Name, m.Type, len(m.Points))
		for _, p := range m.Points {
			keys := make([]string, 0, len(p.Attributes))
			for k := range p.Attributes {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = k + "=" + p.Attributes[k]
			}
			fmt.Printf("    {%s} %d\n", strings.Join(parts, ", "), p.Value)
		}
	}
}
