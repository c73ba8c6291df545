package operator

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/SAP/metrics-operator/internal/clustergate"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/egress"
	"github.com/SAP/metrics-operator/internal/events"
	"github.com/SAP/metrics-operator/internal/remotelimit"
	"github.com/SAP/metrics-operator/internal/sharding"
)

// Options configures the operator. Bind them to flags with BindFlags and
// call Complete before use.
type Options struct {
	// MetricsAddr is where /metrics is served; "0" disables it.
	MetricsAddr string
	// MetricsSecure serves /metrics over HTTPS with Kubernetes authn/authz.
	MetricsSecure bool
	// ProbeAddr is where /healthz and /readyz are served.
	ProbeAddr string
	// PprofAddr is where Go's pprof handlers are served; "" or "0"
	// disables them.
	PprofAddr string
	// LeaderElect makes only one replica export at a time.
	LeaderElect bool
	// LeaderElectionNamespace holds the leader Lease; defaults to Namespace.
	LeaderElectionNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election:
	// how long a dead leader blocks the others, and how often it renews.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Sharding spreads the metrics over all replicas, each holding a
	// Lease of its own (internal/sharding), instead of one leader doing
	// all the work. It excludes LeaderElect.
	Sharding bool
	// ShardLeaseDuration and ShardRenewInterval tune sharding: a lost
	// replica's metrics move after about the duration; members renew and
	// look at each other every interval.
	ShardLeaseDuration, ShardRenewInterval time.Duration
	// ShardWarmStandby has each replica keep ready, unpublished, the
	// event-driven Metrics it would take over from a lost replica, so it
	// serves them as soon as that replica's Lease expires.
	ShardWarmStandby bool
	// Namespace is the operator's own namespace: where the DataSink named
	// "default" is looked up.
	Namespace string
	// ClusterName is the value of the "cluster" dimension for objects of
	// the local cluster.
	ClusterName string
	// EventDrivenDefault is the mode of metrics that set neither
	// spec.eventDriven nor the event-driven annotation.
	EventDrivenDefault bool
	// MinExportInterval is the shortest time between two OTLP pushes to
	// one DataSink; bursts of changes are coalesced into one push.
	MinExportInterval time.Duration
	// StatusInterval is the shortest time between two status writes of
	// one metric that only refresh its observation.
	StatusInterval time.Duration
	// StatusWritesPerSecond is the status write budget of all metrics
	// together.
	StatusWritesPerSecond float64
	// EventNotifyDelay is how long the events handler gathers the changes
	// of a watch before telling the metrics (events.Handler.NotifyDelay);
	// zero means events.DefaultNotifyDelay.
	EventNotifyDelay time.Duration
	// QPS and Burst bound the operator's requests to the API server.
	QPS   float32
	Burst int
	// PollingWorkers is how many polling Metrics are read at once.
	PollingWorkers int
	// ExportTimeout bounds one OTLP push request, connecting included.
	ExportTimeout time.Duration
	// ExportBackoffBase and ExportBackoffMax space the attempts of a
	// failing DataSink: the first retry after Base, doubling up to Max.
	ExportBackoffBase, ExportBackoffMax time.Duration
	// MaxPushesPerNamespace is how many DataSinks of one namespace push at
	// once; a sink beyond it pushes a fraction of a second later. Zero
	// means the default, a negative value no bound.
	MaxPushesPerNamespace int
	// DefaultServiceAccount is the ServiceAccount, in its own namespace, a
	// metric without spec.serviceAccountName is authorized as; empty: the
	// operator's own access applies to such metrics.
	DefaultServiceAccount string
	// AccessRecheckPeriod is how often the access of metrics that read as a
	// ServiceAccount is reviewed again.
	AccessRecheckPeriod time.Duration
	// AccessReviewQPS and AccessReviewBurst bound the SubjectAccessReviews
	// sent for metrics, apart from QPS and Burst: tenants decide how many
	// ServiceAccounts their metrics name, so the reviews must not be able
	// to spend the budget that status writes and reads of every metric use.
	AccessReviewQPS   float32
	AccessReviewBurst int
	// NoCrossNamespaceRefs refuses references to objects in other
	// namespaces than the referring object's.
	NoCrossNamespaceRefs bool
	// DataSinkAllowedEndpoints are the hosts, host globs and CIDRs DataSinks
	// may send to (see datasink.Egress); empty allows any endpoint.
	DataSinkAllowedEndpoints []string
	// ClusterAllowedEndpoints are the hosts, host globs and CIDRs the API
	// servers of remote clusters (RemoteClusterAccess,
	// FederatedClusterAccess) may be reached at (see egress.List); empty
	// allows any.
	ClusterAllowedEndpoints []string
	// DataSinkRecheckInterval is how often every DataSink is resolved again,
	// picking up changes of its Secrets and of its endpoint's addresses.
	DataSinkRecheckInterval time.Duration
	// ClusterGracePeriod is how long the series of a federated metric's
	// cluster that became unreachable stay exported.
	ClusterGracePeriod time.Duration
	// AllowSeveralInProcess lets tests run more than one operator in one
	// process (controller names are otherwise unique per process).
	AllowSeveralInProcess bool
	// TokenRenewFraction is the share of a requested token's lifetime
	// after which a RemoteClusterAccess renews it (zero: 0.8). No flag:
	// tests shorten it to see renewals within seconds.
	TokenRenewFraction float64

	// MaxSeriesPerMetric is the most series one metric may have; its
	// spec.maxSeries may lower it. Zero means the default, a negative
	// value no limit (as for the two limits below).
	MaxSeriesPerMetric int
	// MaxLabelValueLength is the longest dimension value, in bytes.
	MaxLabelValueLength int
	// MaxSeriesTotal is the operator-wide series budget of all metrics
	// together.
	MaxSeriesTotal int
	// MaxSeriesPerNamespace is the series budget of the metrics of one
	// namespace, within MaxSeriesTotal: one tenant cannot use up the
	// others' series.
	MaxSeriesPerNamespace int
	// MaxClustersPerAccess is the most clusters one FederatedClusterAccess
	// connects to; each costs connections and memory, and a tenant's
	// selector may match thousands of objects.
	MaxClustersPerAccess int
	// MaxObjectsPerWatch is the most objects one watch (cluster, resource,
	// namespace scope) may hold, and one poll's list return; over it the
	// metrics report ObjectLimitExceeded.
	MaxObjectsPerWatch int
	// MaxRemoteResponseBytes bounds one response (a LIST page, a GET,
	// discovery) of a remote cluster's API server, and one watch event
	// (never above remotelimit.MaxWatchEventBytes); over it the metrics
	// report ResponseTooLarge. Zero means the default, a negative value no
	// bound on responses.
	MaxRemoteResponseBytes int64
	// MaxRemoteWatchesPerNamespace is the most watches of remote clusters
	// the accesses of one namespace may need; a metric that needs one
	// more reports TenantLimitExceeded.
	MaxRemoteWatchesPerNamespace int
	// MaxRemoteObjectsPerNamespace is the most objects the watches of
	// remote clusters of one namespace's accesses may hold together; the
	// watch that would go beyond it stops, its metrics reporting
	// TenantLimitExceeded.
	MaxRemoteObjectsPerNamespace int
	// ObjectLimitRetry is how long a watch over MaxObjectsPerWatch stays
	// stopped before it is tried again (zero: one minute). No flag: tests
	// shorten it.
	ObjectLimitRetry time.Duration
	// ClusterBackoffMax is the longest a remote cluster that keeps
	// failing is left alone before it is probed again, and so the longest
	// one that answers again waits to be read.
	ClusterBackoffMax time.Duration
	// MaxRemoteReadsPerNamespace is how many workers may wait at once on
	// the remote clusters of one namespace's accesses; a read beyond it is
	// tried again shortly. Zero means the default, a negative value no
	// bound.
	MaxRemoteReadsPerNamespace int
}

// BindFlags registers the operator's flags on fs, following kubebuilder's
// names where they exist.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.Func("kube-api-qps", "Requests per second the operator may send to the API server (sustained; default 50).",
		func(v string) error {
			f, err := strconv.ParseFloat(v, 32)
			o.QPS = float32(f)
			return err
		})
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8443",
		"Address /metrics is served on (use :8080 with --metrics-secure=false); \"0\" disables it.")
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", true,
		"Serve /metrics over HTTPS with Kubernetes authentication and authorization; false serves plain HTTP for local use.")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "Address /healthz and /readyz are served on.")
	fs.StringVar(&o.PprofAddr, "pprof-bind-address", "0",
		"Address Go's pprof handlers (/debug/pprof/) are served on, for profiling; \"0\" disables them.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false,
		"Elect a leader so that only one replica reconciles and exports at a time.")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "",
		"Namespace of the leader election Lease (default: the operator's namespace).")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", 15*time.Second,
		"How long a replica waits for a leader that stopped renewing before it takes over.")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second,
		"How long the leader keeps trying to renew before it gives up leadership.")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", 2*time.Second,
		"How often replicas try to acquire or renew leadership.")
	fs.BoolVar(&o.Sharding, "sharding", false,
		"Spread the metrics over all replicas: each holds a Lease of its own in the operator's namespace and serves, watches "+
			"and pushes only the metrics it owns by rendezvous hashing; Prometheus scrapes every replica. Excludes --leader-elect.")
	fs.DurationVar(&o.ShardLeaseDuration, "shard-lease-duration", DefaultShardLeaseDuration,
		"With --sharding: how long a replica that stopped renewing its Lease still counts as a member; its metrics move to the others "+
			"after about this time (at once when it stops cleanly). Whole seconds, at least four --shard-renew-interval.")
	fs.DurationVar(&o.ShardRenewInterval, "shard-renew-interval", DefaultShardRenewInterval,
		"With --sharding: how often each replica renews its Lease and reads the others'; a joining replica takes its metrics after about two intervals.")
	fs.BoolVar(&o.ShardWarmStandby, "shard-warm-standby", false,
		"With --sharding: each replica also compiles and aggregates, without serving them, the event-driven Metrics it would take over "+
			"from a lost replica, and serves them the moment that replica's Lease expires; costs the watches and memory of those metrics.")
	fs.StringVar(&o.Namespace, "operator-namespace", "",
		"The operator's namespace, where the DataSink named \"default\" lives "+
			"(default: $OPERATOR_CONFIG_NAMESPACE, else $POD_NAMESPACE, else \"default\").")
	fs.StringVar(&o.ClusterName, "cluster-name", "local", "Value of the \"cluster\" dimension for objects of the local cluster.")
	fs.BoolVar(&o.EventDrivenDefault, "event-driven-default", false,
		"Keep metrics that set neither spec.eventDriven nor the metrics.cloud.sap/event-driven annotation current from watch events instead of polling.")
	fs.DurationVar(&o.MinExportInterval, "min-export-interval", 5*time.Second,
		"Shortest time between two OTLP pushes to one DataSink; changes within it are coalesced, and each push carries every metric due.")
	fs.DurationVar(&o.ExportTimeout, "export-timeout", coordinator.DefaultExportTimeout,
		"Longest time one OTLP push may take, connecting included; a DataSink that does not answer within it is retried with backoff. Each DataSink pushes on its own, so a slow one delays no other namespace's (see --max-pushes-per-namespace).")
	fs.DurationVar(&o.ExportBackoffBase, "export-backoff-base", coordinator.DefaultExportBackoffBase,
		"Wait before the first retry of a failing DataSink; it doubles with every further failure (never less than --min-export-interval), whatever changes arrive meanwhile.")
	fs.DurationVar(&o.ExportBackoffMax, "export-backoff-max", coordinator.DefaultExportBackoffCap,
		"Longest wait between two attempts of a failing DataSink: a DataSink that recovers gets current values within it.")
	fs.IntVar(&o.MaxPushesPerNamespace, "max-pushes-per-namespace", coordinator.DefaultMaxPushesPerNamespace,
		"Most OTLP pushes the DataSinks of one namespace may have running at once, however many DataSinks it has, so that one tenant's "+
			"sinks that never answer cannot hold thousands of connections; a DataSink beyond it pushes a fraction of a second later, "+
			"its metrics' status unchanged. The operator namespace's default DataSink is one sink. -1 turns the bound off.")
	fs.IntVar(&o.Burst, "kube-api-burst", 100, "Requests the operator may send to the API server in a burst.")
	fs.IntVar(&o.PollingWorkers, "polling-workers", 4,
		"Polling Metrics read at the same time (and as many ManagedMetrics, FederatedMetrics and FederatedManagedMetrics); each read is a paginated LIST of the metric's objects.")
	fs.DurationVar(&o.StatusInterval, "status-update-interval", 30*time.Second,
		"Shortest time between two status writes of one metric that only refresh its observation; Ready transitions are written at once.")
	fs.Float64Var(&o.StatusWritesPerSecond, "status-write-qps", coordinator.DefaultStatusWritesPerSecond,
		"Status writes per second of all metrics together (in bursts of twice as many); with many busy metrics, observations "+
			"refresh less often than --status-update-interval rather than load the API server. Values on /metrics are always current.")
	fs.DurationVar(&o.EventNotifyDelay, "event-notify-delay", events.DefaultNotifyDelay,
		"How long (1ms to 1s) the changes events make to event-driven metrics are gathered before the metrics are told, once however many "+
			"events changed them: longer costs less CPU on a busy watch with many metrics. /metrics shows a write at once; pushes and status checks "+
			"follow it up to this delay later (on a busy watch, up to ten times it: a metric is told again no sooner than that).")
	fs.StringVar(&o.DefaultServiceAccount, "default-service-account", "",
		"ServiceAccount, in the metric's own namespace, that a metric without spec.serviceAccountName reads as: "+
			"it must be allowed to list and watch the metric's target. Empty: such metrics read with the operator's own access.")
	fs.DurationVar(&o.AccessRecheckPeriod, "access-recheck-period", time.Minute,
		"How often the access of metrics that read as a ServiceAccount is reviewed again; a revoked grant takes effect within it.")
	fs.Func("access-review-qps", "SubjectAccessReviews per second the operator may send for metrics that read as a ServiceAccount "+
		"(default 20); they have this budget of their own, apart from --kube-api-qps, so that many ServiceAccounts slow only their own reviews.",
		func(v string) error {
			f, err := strconv.ParseFloat(v, 32)
			o.AccessReviewQPS = float32(f)
			return err
		})
	fs.IntVar(&o.AccessReviewBurst, "access-review-burst", 40, "SubjectAccessReviews the operator may send in a burst.")
	fs.BoolVar(&o.NoCrossNamespaceRefs, "no-cross-namespace-refs", false,
		"Refuse references (remoteClusterAccessRef, federateClusterAccessRef, and the Secrets and ServiceAccount of a "+
			"RemoteClusterAccess) to objects in another namespace than the referring object's.")

	fs.IntVar(&o.MaxSeriesPerMetric, "max-series-per-metric", DefaultMaxSeriesPerMetric,
		"Most series one metric may have (its spec.maxSeries may lower it); a metric with more exports nothing and reports SeriesLimitExceeded. -1 turns the limit off.")
	fs.IntVar(&o.MaxLabelValueLength, "max-label-value-length", DefaultMaxLabelValueLength,
		"Longest dimension value in bytes; a metric with a longer one exports nothing and reports LabelValueTooLong. -1 turns the limit off.")
	fs.IntVar(&o.MaxSeriesTotal, "max-series-total", DefaultMaxSeriesTotal,
		"Series budget of all metrics together; a metric that would go beyond it exports nothing and reports SeriesBudgetExceeded. -1 turns the limit off.")
	fs.IntVar(&o.MaxSeriesPerNamespace, "max-series-per-namespace", DefaultMaxSeriesPerNamespace,
		"Series budget of the metrics of one namespace, within --max-series-total, so that one tenant cannot use up the others' series; "+
			"a metric that would go beyond it exports nothing and reports SeriesBudgetExceeded. -1 turns the limit off.")
	fs.IntVar(&o.MaxClustersPerAccess, "max-clusters-per-access", DefaultMaxClustersPerAccess,
		"Most clusters one FederatedClusterAccess connects to: the first ones by the discovered objects' namespace and name; "+
			"the access reports ClusterLimitExceeded for the others. -1 turns the limit off.")
	fs.IntVar(&o.MaxObjectsPerWatch, "max-objects-per-watch", DefaultMaxObjectsPerWatch,
		"Most objects one watch (one cluster, resource and namespace scope) may hold, and one poll's list return, so that an API server "+
			"sending objects without end (a tenant's remote cluster) cannot exhaust the operator's memory; its metrics export nothing "+
			"and report ObjectLimitExceeded, and the watch is tried again every minute. -1 turns the limit off.")
	fs.Int64Var(&o.MaxRemoteResponseBytes, "max-remote-response-bytes", remotelimit.DefaultMaxResponseBytes,
		"Largest response (a LIST page, a GET, discovery) the operator reads from a remote cluster's API server, and largest watch event "+
			"(never above 16 MiB), so that a tenant's API server cannot exhaust the operator's memory; over it the metrics export nothing and "+
			"report ResponseTooLarge, and a watch is tried again every minute. The local cluster is not bounded. -1 turns the bound on responses off.")
	fs.IntVar(&o.MaxRemoteWatchesPerNamespace, "max-remote-watches-per-namespace", DefaultMaxRemoteWatchesPerNamespace,
		"Most watches of remote clusters (one per cluster, resource and namespace scope) the RemoteClusterAccesses and FederatedClusterAccesses "+
			"of one namespace may need, so that one tenant's API servers cannot exhaust the operator's memory through many watches; a metric "+
			"that needs one more exports nothing and reports TenantLimitExceeded until the namespace needs fewer. -1 turns the limit off.")
	fs.IntVar(&o.MaxRemoteObjectsPerNamespace, "max-remote-objects-per-namespace", DefaultMaxRemoteObjectsPerNamespace,
		"Most objects the watches of remote clusters of one namespace's accesses may hold together; the watch that would go beyond it "+
			"stops, its metrics export nothing and report TenantLimitExceeded, and it is tried again every minute. The local cluster's "+
			"watches count toward no namespace. -1 turns the limit off.")
	fs.Func("datasink-allowed-endpoints",
		"Comma-separated hosts (collector.monitoring.svc), host globs (*.example.com), IP addresses and CIDRs (10.0.0.0/8) "+
			"DataSinks may send to; a host name is also admitted when every address it resolves to is inside a CIDR. "+
			"Other endpoints are refused with reason EndpointNotAllowed and never connected to. Default: any endpoint.",
		func(v string) error {
			o.DataSinkAllowedEndpoints = append(o.DataSinkAllowedEndpoints, strings.Split(v, ",")...)
			_, err := datasink.ParseEgress(o.DataSinkAllowedEndpoints, nil)
			return err
		})
	fs.Func("cluster-allowed-endpoints",
		"Comma-separated hosts, host globs (*.example.com), IP addresses and CIDRs the API servers of remote clusters "+
			"(RemoteClusterAccess, FederatedClusterAccess) may be reached at; a host name is also admitted when every address it resolves to is inside a CIDR. "+
			"Other servers are refused with reason EndpointNotAllowed and never connected to. Default: any server; "+
			"platforms whose tenants may create cluster accesses must set it, or tenants can make the operator connect to internal addresses.",
		func(v string) error {
			o.ClusterAllowedEndpoints = append(o.ClusterAllowedEndpoints, strings.Split(v, ",")...)
			_, err := egress.Parse(o.ClusterAllowedEndpoints, nil)
			return err
		})
	fs.DurationVar(&o.ClusterGracePeriod, "cluster-grace-period", time.Minute,
		"How long the series of a FederatedMetric's or FederatedManagedMetric's cluster that became unreachable stay exported with their last values; "+
			"after it they are withdrawn until the cluster answers again. The other clusters' series are never held up.")
	fs.DurationVar(&o.ClusterBackoffMax, "cluster-backoff-max", clustergate.DefaultMax,
		"Longest back-off of a remote cluster (RemoteClusterAccess or discovered) whose API server did not answer: meanwhile its metrics "+
			"report ClusterUnreachable without a request and hold no worker, and the operator alone probes it; the back-off starts at 5s "+
			"and doubles with every failure in a row up to this, so a cluster that answers again is read within about this long.")
	fs.IntVar(&o.MaxRemoteReadsPerNamespace, "max-remote-reads-per-namespace", DefaultMaxRemoteReadsPerNamespace,
		"Most workers that may wait at once on the API servers of the remote clusters of one namespace's RemoteClusterAccesses and "+
			"FederatedClusterAccesses, however many accesses it has, so that one tenant's servers that hang cannot hold every worker; "+
			"a read beyond it is tried again 1-2 s later, the metric's status unchanged. Keep it below --polling-workers. -1 turns the bound off.")
	fs.DurationVar(&o.DataSinkRecheckInterval, "datasink-recheck-interval", time.Minute,
		"How often every DataSink and RemoteClusterAccess is resolved again: Secrets are read, not watched (that would need list on all Secrets), "+
			"so a changed Secret or endpoint address applies within this period.")
}

// Defaults of sharding's Lease timing.
const (
	DefaultShardLeaseDuration = 15 * time.Second
	DefaultShardRenewInterval = 2 * time.Second
)

// Defaults of the limits on what one metric may hold.
const (
	DefaultMaxSeriesPerMetric  = 10000
	DefaultMaxLabelValueLength = 1024
	DefaultMaxSeriesTotal      = 1000000
	// DefaultMaxSeriesPerNamespace is a tenth of the total: ten tenants
	// at their limit fill it.
	DefaultMaxSeriesPerNamespace = 100000
	// DefaultMaxClustersPerAccess is far above one platform's control
	// planes per team, far below what exhausts connections or memory.
	DefaultMaxClustersPerAccess = 500
	// DefaultMaxObjectsPerWatch is more than six times the 150,000 Pods
	// Kubernetes supports in a whole cluster, so no watch of a real
	// cluster reaches it, while it keeps one watch to about 190 MiB for a
	// metric counting its objects (192 bytes an object measured by
	// informers' TestObjectLimitMemory), rather than without bound.
	DefaultMaxObjectsPerWatch = 1000000
	// DefaultMaxRemoteWatchesPerNamespace lets a FederatedMetric read two
	// resources of each of the DefaultMaxClustersPerAccess clusters one
	// access may discover.
	DefaultMaxRemoteWatchesPerNamespace = 1000
	// DefaultMaxRemoteObjectsPerNamespace is one watch at
	// DefaultMaxObjectsPerWatch: about 190 MiB for a metric counting
	// them, rather than that times the tenant's watches.
	DefaultMaxRemoteObjectsPerNamespace = 1000000
	// DefaultMaxRemoteReadsPerNamespace leaves half of the default four
	// polling workers to the other namespaces.
	DefaultMaxRemoteReadsPerNamespace = clustergate.DefaultMaxTenantReads
)

// Complete fills defaults from the environment and validates the options.
func (o *Options) Complete() error {
	if o.Namespace == "" {
		o.Namespace = firstNonEmpty(os.Getenv("OPERATOR_CONFIG_NAMESPACE"), os.Getenv("POD_NAMESPACE"), "default")
	}
	if o.LeaderElectionNamespace == "" {
		o.LeaderElectionNamespace = o.Namespace
	}
	if o.ClusterName == "" {
		o.ClusterName = "local"
	}
	if o.QPS == 0 {
		o.QPS = 50
	}
	if o.Burst == 0 {
		o.Burst = 100
	}
	if o.AccessReviewQPS == 0 {
		o.AccessReviewQPS = 20
	}
	if o.AccessReviewBurst == 0 {
		o.AccessReviewBurst = 40
	}
	if o.PollingWorkers <= 0 {
		o.PollingWorkers = 4
	}
	if o.AccessRecheckPeriod == 0 {
		o.AccessRecheckPeriod = time.Minute
	}
	if o.DataSinkRecheckInterval <= 0 {
		o.DataSinkRecheckInterval = time.Minute
	}
	if o.ClusterBackoffMax <= 0 {
		o.ClusterBackoffMax = clustergate.DefaultMax
	}
	if o.ClusterGracePeriod <= 0 {
		o.ClusterGracePeriod = time.Minute
	}
	var errs []error
	if o.AccessRecheckPeriod < 0 {
		errs = append(errs, fmt.Errorf("--access-recheck-period must be positive, got %s", o.AccessRecheckPeriod))
	}
	if _, err := datasink.ParseEgress(o.DataSinkAllowedEndpoints, nil); err != nil {
		errs = append(errs, fmt.Errorf("--datasink-allowed-endpoints: %w", err))
	}
	if _, err := egress.Parse(o.ClusterAllowedEndpoints, nil); err != nil {
		errs = append(errs, fmt.Errorf("--cluster-allowed-endpoints: %w", err))
	}
	if o.MinExportInterval < 0 {
		errs = append(errs, fmt.Errorf("--min-export-interval must not be negative, got %s", o.MinExportInterval))
	}
	if o.EventNotifyDelay == 0 {
		o.EventNotifyDelay = events.DefaultNotifyDelay
	}
	if o.EventNotifyDelay < time.Millisecond || o.EventNotifyDelay > time.Second {
		errs = append(errs, fmt.Errorf("--event-notify-delay must be between 1ms and 1s, got %s", o.EventNotifyDelay))
	}
	errs = append(errs, o.completeExport()...)
	errs = append(errs, o.completeSharding()...)
	o.completeLimits()
	return errors.Join(errs...)
}

// completeExport defaults and checks the export flags; zero means the
// default, as for options set in code rather than from flags.
func (o *Options) completeExport() []error {
	if o.ExportTimeout == 0 {
		o.ExportTimeout = coordinator.DefaultExportTimeout
	}
	if o.ExportBackoffBase == 0 {
		o.ExportBackoffBase = coordinator.DefaultExportBackoffBase
	}
	if o.ExportBackoffMax == 0 {
		o.ExportBackoffMax = max(coordinator.DefaultExportBackoffCap, o.ExportBackoffBase)
	}
	var errs []error
	if o.ExportTimeout < 0 {
		errs = append(errs, fmt.Errorf("--export-timeout must be positive, got %s", o.ExportTimeout))
	}
	if o.ExportBackoffBase < 0 {
		errs = append(errs, fmt.Errorf("--export-backoff-base must be positive, got %s", o.ExportBackoffBase))
	}
	if o.ExportBackoffMax < o.ExportBackoffBase {
		errs = append(errs, fmt.Errorf("--export-backoff-max (%s) must not be below --export-backoff-base (%s)",
			o.ExportBackoffMax, o.ExportBackoffBase))
	}
	return errs
}

// completeSharding defaults and checks the sharding flags.
func (o *Options) completeSharding() []error {
	if o.ShardLeaseDuration == 0 {
		o.ShardLeaseDuration = DefaultShardLeaseDuration
	}
	if o.ShardRenewInterval == 0 {
		o.ShardRenewInterval = DefaultShardRenewInterval
	}
	var errs []error
	if o.Sharding && o.LeaderElect {
		errs = append(errs, errors.New("--sharding and --leader-elect exclude each other: with sharding every replica is active"))
	}
	if o.ShardLeaseDuration%time.Second != 0 {
		errs = append(errs, fmt.Errorf("--shard-lease-duration must be whole seconds (a Lease counts seconds), got %s", o.ShardLeaseDuration))
	}
	if o.ShardRenewInterval <= 0 || o.ShardLeaseDuration < sharding.MinRenewals*o.ShardRenewInterval {
		errs = append(errs, fmt.Errorf("--shard-lease-duration (%s) must be at least four --shard-renew-interval (%s)",
			o.ShardLeaseDuration, o.ShardRenewInterval))
	}
	return errs
}

// completeLimits defaults the limits on what one metric may hold; zero
// means the default, as for options set in code rather than from flags,
// and a negative value no limit.
func (o *Options) completeLimits() {
	if o.MaxSeriesPerMetric == 0 {
		o.MaxSeriesPerMetric = DefaultMaxSeriesPerMetric
	}
	if o.MaxLabelValueLength == 0 {
		o.MaxLabelValueLength = DefaultMaxLabelValueLength
	}
	if o.MaxSeriesTotal == 0 {
		o.MaxSeriesTotal = DefaultMaxSeriesTotal
	}
	if o.MaxSeriesPerNamespace == 0 {
		o.MaxSeriesPerNamespace = DefaultMaxSeriesPerNamespace
	}
	if o.MaxClustersPerAccess == 0 {
		o.MaxClustersPerAccess = DefaultMaxClustersPerAccess
	}
	if o.MaxObjectsPerWatch == 0 {
		o.MaxObjectsPerWatch = DefaultMaxObjectsPerWatch
	}
	if o.MaxRemoteResponseBytes == 0 {
		o.MaxRemoteResponseBytes = remotelimit.DefaultMaxResponseBytes
	}
	if o.MaxRemoteWatchesPerNamespace == 0 {
		o.MaxRemoteWatchesPerNamespace = DefaultMaxRemoteWatchesPerNamespace
	}
	if o.MaxRemoteObjectsPerNamespace == 0 {
		o.MaxRemoteObjectsPerNamespace = DefaultMaxRemoteObjectsPerNamespace
	}
	if o.MaxRemoteReadsPerNamespace == 0 {
		o.MaxRemoteReadsPerNamespace = DefaultMaxRemoteReadsPerNamespace
	}
	if o.MaxPushesPerNamespace == 0 {
		o.MaxPushesPerNamespace = coordinator.DefaultMaxPushesPerNamespace
	}
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
