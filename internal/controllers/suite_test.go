package controllers_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

var (
	env *testenv.Env
	op  *operator.Operator
)

// TestMain starts one control plane and one operator, assembled exactly as
// the binary assembles it, for all tests of the package.
func TestMain(m *testing.M) {
	testenv.Main(m, &env, func(e *testenv.Env) (func(), error) {
		opts := operator.Options{MetricsAddr: "0", ProbeAddr: "0", MinExportInterval: time.Second}
		if err := opts.Complete(); err != nil {
			return nil, err
		}
		var err error
		op, err = operator.New(e.Config, opts)
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
