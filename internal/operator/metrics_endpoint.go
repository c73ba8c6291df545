package operator

import (
	"net/http"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/rest"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
)

// metricsPath is the path controller-runtime serves its registry on.
const metricsPath = "/metrics"

// metricsHandlerOpts are the options of controller-runtime's /metrics
// handler, as continueOnGatherError sets them.
func metricsHandlerOpts() promhttp.HandlerOpts {
	o := promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}
	continueOnGatherError(&o)
	return o
}

// servingUsersMetrics is the metrics server's FilterProvider. The server's
// /metrics handler is promhttp over the process's registry and cannot be
// replaced; its filter can wrap it, so /metrics writes the users'
// families after it (promexport.Collector.Handler). With secure serving
// the authentication and authorization filter goes around everything.
func servingUsersMetrics(c *promexport.Collector, secure bool) func(*rest.Config, *http.Client) (metricsserver.Filter, error) {
	return func(cfg *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
		var auth metricsserver.Filter
		if secure {
			a, err := filters.WithAuthenticationAndAuthorization(cfg, hc)
			if err != nil {
				return nil, err
			}
			auth = a
		}
		return func(log logr.Logger, next http.Handler) (http.Handler, error) {
			users := c.Handler(next, ctrlmetrics.Registry, metricsHandlerOpts())
			// The filter wraps every handler of the server; only /metrics
			// gets the users' families.
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == metricsPath {
					users.ServeHTTP(w, r)
					return
				}
				next.ServeHTTP(w, r)
			})
			if auth == nil {
				return h, nil
			}
			return auth(log, h)
		}, nil
	}
}
