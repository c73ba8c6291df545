package operator_test

import (
	"context"
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	testenv.Main(m, &env)
}

// run starts an operator in this process with cfg and opts (completed
// here) and stops it when the test ends.
func run(t *testing.T, cfg *rest.Config, opts operator.Options) {
	t.Helper()
	opts.AllowSeveralInProcess = true
	if err := opts.Complete(); err != nil {
		t.Fatal(err)
	}
	op, err := operator.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- op.Manager.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator stopped with %v", err)
		}
	})
}
