package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/otlpsink"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

const (
	objectsNamespace = "bench-objects"
	metricsNamespace = "bench-metrics"
	probeName        = "probe"
	probeMetric      = "bench_probe"
	sinkName         = "bench-sink"
)

// envInfo describes where the benchmark ran.
type envInfo struct {
	CPUs        int
	CPUModel    string
	MemTotal    string
	GoVersion   string
	KubeVersion string
	Commit      string
	OTLPURL     string
}

// harness is what all scenarios share: the control plane, the OTLP
// receiver, the target objects and the model of their labels.
type harness struct {
	cfg     config
	env     *testenv.Env
	restCfg *rest.Config
	c       client.Client
	// writes is the background writers' client: protobuf, so that the
	// API server and the writers spend less of the shared CPU per write
	// (JSON for the operator's own kinds, which have no protobuf form).
	writes     client.Client
	apiMetrics *apiScraper
	sink       *otlpsink.Sink
	kubeconfig string
	info       envInfo
	model      *model

	// probeSeq is the probe ConfigMap's current seq label.
	probeSeq atomic.Int64
	// otlp receives the probe's pushes for the running scenario.
	otlp atomic.Pointer[probeLog]

	stops []func()
}

func startHarness(ctx context.Context, cfg config) (_ *harness, err error) {
	h := &harness{cfg: cfg}
	defer func() {
		if err != nil {
			h.stop()
		}
	}()
	logf("starting the OTLP receiver")
	h.sink, err = otlpsink.Listen("127.0.0.1:0", "127.0.0.1:0", otlpsink.WithOnBatch(h.onBatch))
	if err != nil {
		return nil, fmt.Errorf("OTLP receiver: %w", err)
	}
	h.stops = append(h.stops, h.sink.Stop)

	logf("starting the control plane (etcd, kube-apiserver)")
	h.env, err = testenv.Start()
	if err != nil {
		return nil, err
	}
	h.stops = append(h.stops, func() {
		logf("stopping the control plane")
		if err := h.env.Stop(); err != nil {
			logf("stopping the control plane: %v", err)
		}
	})
	// The benchmark's own client must not be what limits the write rate.
	h.restCfg = rest.CopyConfig(h.env.Config)
	h.restCfg.QPS, h.restCfg.Burst = 20000, 40000
	if h.c, err = client.New(h.restCfg, client.Options{Scheme: operator.NewScheme()}); err != nil {
		return nil, err
	}
	protoCfg := rest.CopyConfig(h.restCfg)
	protoCfg.ContentType = kruntime.ContentTypeProtobuf
	if h.writes, err = client.New(protoCfg, client.Options{Scheme: operator.NewScheme()}); err != nil {
		return nil, err
	}
	if h.apiMetrics, err = newAPIScraper(h.restCfg); err != nil {
		return nil, err
	}
	if h.kubeconfig, err = h.writeKubeconfig(); err != nil {
		return nil, err
	}
	h.info = collectInfo(h.restCfg, h.sink.HTTPURL())

	for _, ns := range []string{objectsNamespace, metricsNamespace} {
		if err := h.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return nil, fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	h.model = newModel(cfg.objects)
	if err := h.createObjects(ctx); err != nil {
		return nil, err
	}
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: probeName, Namespace: objectsNamespace,
		Labels: map[string]string{"probe": "true", "seq": "0"}}}
	if err := h.c.Create(ctx, probe); err != nil {
		return nil, fmt.Errorf("creating the probe ConfigMap: %w", err)
	}
	sinks := []string{sinkName}
	if cfg.pushAll {
		sinks = append(sinks, "default")
	}
	for _, name := range sinks {
		ds := &v1alpha1.DataSink{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metricsNamespace},
			Spec: v1alpha1.DataSinkSpec{Connection: v1alpha1.Connection{Endpoint: h.sink.HTTPURL()}}}
		if err := h.c.Create(ctx, ds); err != nil {
			return nil, fmt.Errorf("creating DataSink %s: %w", name, err)
		}
	}
	return h, nil
}

// stop stops everything startHarness started, last first.
func (h *harness) stop() {
	for i := len(h.stops) - 1; i >= 0; i-- {
		h.stops[i]()
	}
	h.stops = nil
}

func (h *harness) writeKubeconfig() (string, error) {
	user, err := h.env.AddUser(envtest.User{Name: "bench-operator", Groups: []string{"system:masters"}})
	if err != nil {
		return "", fmt.Errorf("creating the operator's user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path, err := filepath.Abs(filepath.Join(h.cfg.workDir, "kubeconfig"))
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, data, 0o600)
}

// onBatch records the probe's seq from every push that carries it.
func (h *harness) onBatch(b otlpsink.Batch) {
	log := h.otlp.Load()
	if log == nil {
		return
	}
	for _, m := range b.MetricList() {
		if m.Name != probeMetric {
			continue
		}
		seq := int64(-1)
		for _, p := range m.Points {
			if v, err := strconv.ParseInt(p.Attributes["seq"], 10, 64); err == nil && p.Value > 0 && v > seq {
				seq = v
			}
		}
		if seq >= 0 {
			log.observeOTLP(b.Time, seq)
		}
	}
}

// createObjects creates the N target ConfigMaps with a few workers.
func (h *harness) createObjects(ctx context.Context) error {
	n := h.cfg.objects
	logf("creating %d ConfigMaps in namespace %s", n, objectsNamespace)
	start := time.Now()
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		firstEr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range 32 {
		wg.Go(func() {
			for ctx.Err() == nil {
				k := int(next.Add(1)) - 1
				if k >= n {
					return
				}
				cm := &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: objectName(k), Namespace: objectsNamespace, Labels: map[string]string{
						"team": teamValue(h.model.team(k)), "tier": tierValue(h.model.tierOf(k)), "app": "bench",
					}},
					Data: map[string]string{"owner": "team-" + strconv.Itoa(k%10), "size": strconv.Itoa(k % 1000), "note": "benchmark object"},
				}
				if err := h.writes.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
					errOnce.Do(func() { firstEr = fmt.Errorf("creating %s: %w", cm.Name, err); cancel() })
					return
				}
				if k > 0 && k%20000 == 0 {
					logf("  %d created", k)
				}
			}
		})
	}
	wg.Wait()
	if firstEr != nil {
		return firstEr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	logf("created %d ConfigMaps in %.1fs", n, time.Since(start).Seconds())
	return nil
}

// patchLabels merge-patches labels of a ConfigMap in the objects namespace.
func (h *harness) patchLabels(ctx context.Context, name string, labels map[string]string) error {
	var b strings.Builder
	b.WriteString(`{"metadata":{"labels":{`)
	first := true
	for k, v := range labels {
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, "%q:%q", k, v)
	}
	b.WriteString(`}}}`)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: objectsNamespace}}
	return h.writes.Patch(ctx, cm, client.RawPatch(types.MergePatchType, []byte(b.String())))
}

func objectName(k int) string { return fmt.Sprintf("obj-%06d", k) }

func collectInfo(cfg *rest.Config, otlpURL string) envInfo {
	info := envInfo{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OTLPURL: otlpURL}
	if out, err := exec.Command("nproc").Output(); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil {
			info.CPUs = n
		}
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				info.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && k == "MemTotal" {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				info.MemTotal = fmt.Sprintf("%.1f GiB", kb/1024/1024)
				break
			}
		}
		_ = f.Close()
	}
	if dc, err := discovery.NewDiscoveryClientForConfig(cfg); err == nil {
		if v, err := dc.ServerVersion(); err == nil {
			info.KubeVersion = v.GitVersion
		}
	}
	if out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		info.Commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
			info.Commit += " (with uncommitted changes)"
		}
	}
	return info
}
