package controllers_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// clusterGrace is the operator's --cluster-grace-period in these tests.
const clusterGrace = 6 * time.Second

// operatorNamespace is the operator's namespace in these tests: where the
// DataSink named default, which metrics without dataSinkRef use, lives.
const operatorNamespace = "default"

var (
	env        *testenv.Env
	op         *operator.Operator
	metricsURL string
	// requests counts the operator's API requests by verb and path.
	requests = testenv.NewRequestCounter()
)

// TestMain starts one control plane and one operator, assembled exactly as
// the binary assembles it, for all tests of the package.
func TestMain(m *testing.M) {
	// Errors only: a failing test shows what went wrong without the noise.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	testenv.Main(m, &env, func(e *testenv.Env) (func(), error) {
		addr, err := testenv.FreeAddr()
		if err != nil {
			return nil, err
		}
		metricsURL = "http://" + addr + "/metrics"
		opts := operator.Options{MetricsAddr: addr, MetricsSecure: false, ProbeAddr: "0", Namespace: operatorNamespace,
			MinExportInterval: minExportInterval, StatusInterval: time.Second,
			ExportTimeout: exportTimeout, ExportBackoffBase: backoffBase, ExportBackoffMax: backoffCap,
			DataSinkRecheckInterval: time.Second,
			MaxSeriesPerNamespace:   namespaceBudget,
			// Tokens of RemoteClusterAccesses (1 h) are renewed every 11 s.
			TokenRenewFraction: 0.003,
			ClusterGracePeriod: clusterGrace,
			// Clusters the tests stop are found back within seconds.
			ClusterBackoffMax: 5 * time.Second}
		if err := opts.Complete(); err != nil {
			return nil, err
		}
		cfg := rest.CopyConfig(e.Config)
		cfg.Wrap(requests.Wrap)
		op, err = operator.New(cfg, opts)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- op.Manager.Start(ctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				fmt.Fprintln(os.Stderr, "manager:", err)
			}
		}, nil
	})
}
