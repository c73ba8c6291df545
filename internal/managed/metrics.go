package managed

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var kindsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "metrics_operator_managed_kinds",
	Help: "Managed resource kinds (CRDs with the categories crossplane and managed) a cluster serves, as the operator last saw them.",
}, []string{"cluster"})

func init() {
	metrics.Registry.MustRegister(kindsGauge)
}
