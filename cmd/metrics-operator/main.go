// Command metrics-operator runs the metrics operator: it keeps the
// metrics that Metric objects declare current and exports them to
// Prometheus and over OTLP. `metrics-operator preview -f FILE` and
// `metrics-operator validate -f FILE` show what a metric would export
// before it is deployed (see internal/preview).
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/SAP/metrics-operator/internal/operator"
	"github.com/SAP/metrics-operator/internal/preview"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "preview" || os.Args[1] == "validate") {
		ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := preview.Main(ctx, os.Args[1], os.Args[2:], os.Stdin, os.Stdout, os.Stderr, preview.Limits{
			MaxSeriesPerMetric:  operator.DefaultMaxSeriesPerMetric,
			MaxLabelValueLength: operator.DefaultMaxLabelValueLength,
			MaxSeriesTotal:      operator.DefaultMaxSeriesTotal,
		})
		cancel()
		os.Exit(code)
	}
	var opts operator.Options
	opts.BindFlags(flag.CommandLine)
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	if err := opts.Complete(); err != nil {
		log.Error(err, "Invalid flags")
		os.Exit(2)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "Loading kubeconfig failed")
		os.Exit(1)
	}
	log.Info("Starting operator", "namespace", opts.Namespace, "cluster", opts.ClusterName,
		"eventDrivenDefault", opts.EventDrivenDefault, "leaderElect", opts.LeaderElect)
	if err := operator.Run(ctrl.SetupSignalHandler(), cfg, opts); err != nil {
		log.Error(err, "Operator stopped with an error")
		os.Exit(1)
	}
}
