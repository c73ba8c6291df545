package operator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/access"
	"github.com/SAP/metrics-operator/internal/clustergate"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/controllers"
	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/datasink"
	"github.com/SAP/metrics-operator/internal/egress"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/events"
	"github.com/SAP/metrics-operator/internal/export/otlp"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
	"github.com/SAP/metrics-operator/internal/federation"
	"github.com/SAP/metrics-operator/internal/informers"
	"github.com/SAP/metrics-operator/internal/managed"
	"github.com/SAP/metrics-operator/internal/registry"
	"github.com/SAP/metrics-operator/internal/remotelimit"
	"github.com/SAP/metrics-operator/internal/sharding"
	"github.com/SAP/metrics-operator/internal/startup"
)

// statusWriter is a metric kind's status writer, which also follows the
// kind's objects for statuses it did not write.
type statusWriter interface {
	coordinator.StatusWriter
	WatchStatus(ctx context.Context, informers cache.Informers, overwritten func(coordinator.Key, bool)) error
}

// leaderElectionID names the Lease replicas compete for.
const leaderElectionID = "metrics-operator.metrics.cloud.sap"

// NewScheme returns a scheme with the built-in kinds and this API.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err) // static registration; cannot fail at run time
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Operator is the assembled operator: the manager and the shared state
// its components exchange.
type Operator struct {
	Manager manager.Manager
	// Sinks holds the resolved DataSinks the exporters read.
	Sinks *datasink.Store
	// Coordinator turns results into exports and status.
	Coordinator *coordinator.Coordinator
	// Collector serves the users' metrics on /metrics.
	Collector *promexport.Collector
	// Informers runs the shared watches of event-driven metrics.
	Informers *informers.Manager
	// Clusters holds the connections to the clusters metrics read.
	Clusters *clusters.Set
	// Federated holds the clusters each FederatedClusterAccess discovered.
	Federated *federation.Members
	// Discovery runs the FederatedClusterAccesses' discovery watches.
	Discovery *federation.Watches
	// ManagedKinds runs the CRD watches of remote clusters that managed
	// metrics read.
	ManagedKinds *managed.Watchers
}

// New builds the manager with every controller registered. It completes
// opts itself (Complete is idempotent): options set in code get the same
// defaults and checks as flags, and an invalid one is an error here, not
// a misbehaving component later.
func New(cfg *rest.Config, opts Options) (*Operator, error) {
	if err := opts.Complete(); err != nil {
		return nil, fmt.Errorf("invalid options: %w", err)
	}
	// Polling LISTs page by page and every metric writes status: the
	// client-go default of 5 requests/s would throttle a few hundred
	// metrics to minutes.
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = opts.QPS, opts.Burst
	collector, err := promexport.Shared(ctrlmetrics.Registry)
	if err != nil {
		return nil, fmt.Errorf("creating the metrics collector: %w", err)
	}
	metricsOpts := metricsserver.Options{BindAddress: opts.MetricsAddr, SecureServing: opts.MetricsSecure,
		HandlerOpts:    []func(*promhttp.HandlerOpts){continueOnGatherError},
		FilterProvider: servingUsersMetrics(collector, opts.MetricsSecure)}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        NewScheme(),
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        opts.ProbeAddr,
		PprofBindAddress:              opts.PprofAddr,
		LeaderElection:                opts.LeaderElect,
		LeaderElectionID:              leaderElectionID,
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		Controller:                    config.Controller{SkipNameValidation: &opts.AllowSeveralInProcess},
		LeaseDuration:                 durationOrNil(opts.LeaseDuration),
		RenewDeadline:                 durationOrNil(opts.RenewDeadline),
		RetryPeriod:                   durationOrNil(opts.RetryPeriod),
		// The cache's watches resume within seconds of an API server
		// restart, and stop at once on shutdown even during an outage.
		Cache: cache.Options{NewInformer: informers.NewCacheInformer},
		Client: client.Options{Cache: &client.CacheOptions{
			// Secrets are read when a DataSink is resolved, never kept:
			// caching every Secret of the cluster would hold credentials
			// the operator has no use for.
			DisableFor: []client.Object{&corev1.Secret{}},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}

	recorder := mgr.GetEventRecorder("metrics-operator")
	// Their fields are set below; the status writers only need their methods.
	fedMetrics, fedManaged := &controllers.FederatedMetricReconciler{}, &controllers.FederatedManagedMetricReconciler{}
	sinks := datasink.NewStore()
	collector.Clear()
	// The registry is process-wide; a stopped operator must leave it.
	if err := mgr.Add(clearOnStop{collector}); err != nil {
		return nil, err
	}
	// Status writers read the object from the cache and replace its whole
	// status, never reading it from the API server (see
	// controllers.MetricStatusWriter): a status write is one PATCH.
	statusClient := mgr.GetClient()
	statusWriters := map[string]statusWriter{
		"Metric":        &controllers.MetricStatusWriter{Client: statusClient, Recorder: recorder},
		"ManagedMetric": &controllers.ManagedMetricStatusWriter{Client: statusClient, Recorder: recorder},
		"FederatedMetric": &controllers.FederatedMetricStatusWriter{Client: statusClient, Recorder: recorder,
			Observe: fedMetrics.Observation},
		"FederatedManagedMetric": &controllers.FederatedManagedMetricStatusWriter{Client: statusClient, Recorder: recorder,
			Clusters: fedManaged.Observation},
	}
	coordWriters := map[string]coordinator.StatusWriter{}
	for kind, w := range statusWriters {
		coordWriters[kind] = w
	}
	coord, err := coordinator.New(coordinator.Options{
		MinExportInterval:     opts.MinExportInterval,
		StatusInterval:        opts.StatusInterval,
		StatusWritesPerSecond: opts.StatusWritesPerSecond,
		Sinks:                 sinks,
		Exporter:              otlp.NewPool(otlp.Options{Timeout: opts.ExportTimeout, Resource: otlp.InstanceResource(instanceID())}),
		ExportTimeout:         opts.ExportTimeout,
		MaxPushesPerNamespace: opts.MaxPushesPerNamespace,
		ExportBackoff:         coordinator.Backoff{Base: opts.ExportBackoffBase, Cap: opts.ExportBackoffMax},
		Prometheus:            collector,
		StatusWriters:         coordWriters,
	})
	if err != nil {
		return nil, err
	}
	// Only the leader writes status, so only it looks for statuses it did
	// not write.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		for _, w := range statusWriters {
			if err := w.WatchStatus(ctx, mgr.GetCache(), coord.StatusOverwritten); err != nil {
				return err
			}
		}
		<-ctx.Done()
		return nil
	})); err != nil {
		return nil, err
	}
	shard, err := addSharding(mgr, coord, opts)
	if err != nil {
		return nil, err
	}

	sinkEgress, err := datasink.ParseEgress(opts.DataSinkAllowedEndpoints, nil)
	if err != nil {
		return nil, fmt.Errorf("--datasink-allowed-endpoints: %w", err)
	}
	if err := (&controllers.DataSinkReconciler{
		Shard:    shard,
		Client:   mgr.GetClient(),
		Recorder: recorder,
		Store:    sinks,
		OnChange: coord.SinkChanged,
		Egress:   sinkEgress,
		Recheck:  opts.DataSinkRecheckInterval,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up DataSink controller: %w", err)
	}
	clusterEgress, err := egress.Parse(opts.ClusterAllowedEndpoints, nil)
	if err != nil {
		return nil, fmt.Errorf("--cluster-allowed-endpoints: %w", err)
	}
	// Every cluster metrics read is a connection; informers is set below,
	// before anything can rebuild or close one.
	var infs *informers.Manager
	conns, err := clusters.New(clusters.Options{
		Local: mgr.GetConfig(), LocalName: opts.ClusterName, LocalMapper: mgr.GetRESTMapper(),
		QPS: opts.QPS, Burst: opts.Burst, Egress: clusterEgress,
		Restart:    func(key string) { infs.RestartCluster(key) },
		Closed:     func(key string) { infs.ReleaseCluster(key) },
		MaxObjects: opts.MaxObjectsPerWatch,
		Limits:     remotelimit.Limits{MaxResponseBytes: opts.MaxRemoteResponseBytes},
		Backoff:    clustergate.Options{Max: opts.ClusterBackoffMax, MaxTenantReads: opts.MaxRemoteReadsPerNamespace},
	})
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(conns); err != nil {
		return nil, err
	}
	lister := conns.Local().Lister
	reviews, err := reviewClient(mgr, opts)
	if err != nil {
		return nil, err
	}
	checker := access.New(access.Options{
		Client:                reviews,
		DefaultServiceAccount: opts.DefaultServiceAccount,
		RecheckPeriod:         opts.AccessRecheckPeriod,
		NoCrossNamespaceRefs:  opts.NoCrossNamespaceRefs,
	})
	if err := mgr.Add(checker); err != nil {
		return nil, err
	}
	defaultSink := types.NamespacedName{Namespace: opts.Namespace, Name: "default"}
	guard := controllers.Guard{Names: collector, Limits: evaluation.Limits{
		MaxSeries:      opts.MaxSeriesPerMetric,
		MaxValueLength: opts.MaxLabelValueLength,
	}, Budgets: evaluation.NewBudgets(opts.MaxSeriesPerNamespace, opts.MaxSeriesTotal)}
	reg := registry.New()
	if err := (&controllers.MetricReconciler{
		Client:             mgr.GetClient(),
		Lister:             lister,
		Coordinator:        coord,
		Registry:           reg,
		ClusterName:        opts.ClusterName,
		DefaultSink:        defaultSink,
		EventDrivenDefault: opts.EventDrivenDefault,
		Guard:              guard,
		Workers:            opts.PollingWorkers,
		Access:             checker,
		Clusters:           conns,
		Shard:              shard,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up Metric controller: %w", err)
	}
	if err := (&controllers.RemoteClusterAccessReconciler{
		Shard:         shard,
		Client:        mgr.GetClient(),
		Recorder:      recorder,
		Clusters:      conns,
		Access:        checker,
		Recheck:       opts.DataSinkRecheckInterval,
		RenewFraction: opts.TokenRenewFraction,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up RemoteClusterAccess controller: %w", err)
	}
	federated, discovery := federation.NewMembers(), federation.NewWatches(conns.Local().Clients.Dynamic)
	if err := (&controllers.FederatedClusterAccessReconciler{
		Shard:    shard,
		Client:   mgr.GetClient(),
		Recorder: recorder,
		Clusters: conns,
		Lister:   lister,
		Watches:  discovery,
		Members:  federated,
		Access:   checker,
		Recheck:  opts.DataSinkRecheckInterval,
		// -1 (no limit) stays negative: connect takes all.
		MaxClusters: opts.MaxClustersPerAccess,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up FederatedClusterAccess controller: %w", err)
	}

	// The watches wait until the metrics present at start are registered,
	// so that each lists once for all of them.
	gateOpts := startup.Options{Existing: startup.ListMetrics(mgr.GetClient())}
	if s, ok := shard.(*sharding.Shard); ok {
		// A sharded replica knows which metrics it registers once its view
		// has settled; until then the gate waits for it.
		gateOpts.Unsettled = func() bool { _, _, settled := s.Status(); return !settled }
	}
	gate, err := startup.New(gateOpts)
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(gate); err != nil {
		return nil, err
	}
	infs, err = informers.New(informers.Options{
		Registry:              reg,
		Handler:               &events.Handler{Registry: reg, NotifyDelay: opts.EventNotifyDelay},
		Clients:               conns.Clients,
		Registered:            gate.Open(),
		MaxObjects:            opts.MaxObjectsPerWatch,
		RetryAfterObjectLimit: opts.ObjectLimitRetry,
		TenantOf:              accessNamespace(conns.Local().Key),
		MaxWatchesPerTenant:   opts.MaxRemoteWatchesPerNamespace,
		MaxObjectsPerTenant:   opts.MaxRemoteObjectsPerNamespace,
	})
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(infs); err != nil {
		return nil, err
	}
	if err := (&controllers.EventDrivenReconciler{
		Client:             mgr.GetClient(),
		Lister:             lister,
		Registry:           reg,
		Informers:          infs,
		Coordinator:        coord,
		ClusterName:        opts.ClusterName,
		DefaultSink:        defaultSink,
		EventDrivenDefault: opts.EventDrivenDefault,
		Access:             checker,
		Guard:              guard,
		Clusters:           conns,
		Startup:            gate,
		Shard:              shard,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up event-driven Metric controller: %w", err)
	}
	remoteKinds := managed.NewWatchers()
	if err := mgr.Add(remoteKinds); err != nil {
		return nil, err
	}
	reading := controllers.ManagedReading{
		Registry:           reg,
		Informers:          infs,
		Coordinator:        coord,
		DefaultSink:        defaultSink,
		EventDrivenDefault: opts.EventDrivenDefault,
		Access:             checker,
		Guard:              guard,
		Startup:            gate,
		Shard:              shard,
	}
	if err := addManagedMetrics(mgr, &controllers.ManagedMetricReconciler{
		ManagedReading: reading,
		Client:         mgr.GetClient(),
		Lister:         lister,
		Kinds:          managed.NewWatcher(opts.ClusterName, conns.Local().Clients.Dynamic),
		Clusters:       conns,
		RemoteKinds:    remoteKinds,
		ClusterName:    opts.ClusterName,
		Workers:        opts.PollingWorkers,
	}); err != nil {
		return nil, err
	}
	fedMetrics.Client, fedMetrics.Registry, fedMetrics.Informers, fedMetrics.Coordinator = mgr.GetClient(), reg, infs, coord
	fedMetrics.Clusters, fedMetrics.Members, fedMetrics.DefaultSink, fedMetrics.Guard = conns, federated, defaultSink, guard
	fedMetrics.EventDrivenDefault, fedMetrics.Access, fedMetrics.GracePeriod = opts.EventDrivenDefault, checker, opts.ClusterGracePeriod
	fedMetrics.Workers, fedMetrics.Startup, fedMetrics.Shard = opts.PollingWorkers, gate, shard
	if err := fedMetrics.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up FederatedMetric controller: %w", err)
	}
	*fedManaged = controllers.FederatedManagedMetricReconciler{
		ManagedReading: reading,
		Client:         mgr.GetClient(),
		Clusters:       conns,
		Kinds:          remoteKinds,
		Members:        federated,
		GracePeriod:    opts.ClusterGracePeriod,
		Workers:        opts.PollingWorkers,
	}
	if err := fedManaged.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up FederatedManagedMetric controller: %w", err)
	}
	return &Operator{Manager: mgr, Sinks: sinks, Coordinator: coord, Collector: collector, Informers: infs, Clusters: conns,
		Federated: federated, Discovery: discovery, ManagedKinds: remoteKinds}, nil
}

// addSharding adds the coordinator and, with --sharding, this replica's
// shard membership, returning the Shard the reconcilers consult (nil
// without sharding: this replica serves every metric). The membership's
// Lease is deleted only once the coordinator has stopped pushing, so the
// others never push a metric this replica still pushes.
func addSharding(mgr manager.Manager, coord *coordinator.Coordinator, opts Options) (controllers.Shard, error) {
	if !opts.Sharding {
		return nil, mgr.Add(coord)
	}
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("shard Lease client: %w", err)
	}
	members, shard, err := sharding.New(sharding.Options{
		Client: cs, Namespace: opts.LeaderElectionNamespace, Identity: instanceID(),
		LeaseDuration: opts.ShardLeaseDuration, RenewInterval: opts.ShardRenewInterval,
		WarmStandby: opts.ShardWarmStandby,
	})
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(members); err != nil {
		return nil, err
	}
	return shard, mgr.Add(leaveAfter{coord, members})
}

// leaveAfter runs the coordinator and deletes the shard Lease once it
// has stopped (the membership, a runnable without leader election, was
// stopped before, and dropped every metric).
type leaveAfter struct {
	*coordinator.Coordinator
	members *sharding.Membership
}

func (l leaveAfter) Start(ctx context.Context) error {
	err := l.Coordinator.Start(ctx)
	leaveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return errors.Join(err, l.members.Leave(leaveCtx))
}

// addManagedMetrics runs the managed kinds' watch and the ManagedMetric
// reconciler.
func addManagedMetrics(mgr manager.Manager, r *controllers.ManagedMetricReconciler) error {
	if err := mgr.Add(r.Kinds); err != nil {
		return err
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up ManagedMetric controller: %w", err)
	}
	return nil
}

// Run builds the manager and runs it until ctx is done.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	op, err := New(cfg, opts)
	if err != nil {
		return err
	}
	return op.Manager.Start(ctx)
}

// durationOrNil leaves a zero duration to controller-runtime's default.
func durationOrNil(d time.Duration) *time.Duration {
	if d <= 0 {
		return nil
	}
	return &d
}

// instanceID names this replica in OTLP resources: the pod's name when
// the Downward API provides it, else host name and process id.
func instanceID() string {
	if pod := os.Getenv("POD_NAME"); pod != "" {
		return pod
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// clearOnStop removes the users' metrics from the process-wide collector
// when the manager stops, leader or not.
type clearOnStop struct{ c *promexport.Collector }

func (u clearOnStop) Start(ctx context.Context) error {
	<-ctx.Done()
	u.c.Clear()
	return nil
}

func (clearOnStop) NeedLeaderElection() bool { return false }

// continueOnGatherError makes /metrics serve every family it could
// gather: controller-runtime answers 500 to any gather error, so one
// malformed family would hide all the others. Errors are counted in
// promhttp_metric_handler_errors_total and not logged: their text quotes
// label values, which come from users' objects.
func continueOnGatherError(o *promhttp.HandlerOpts) {
	o.ErrorHandling = promhttp.ContinueOnError
	o.Registry = ctrlmetrics.Registry
}

// reviewClient is the client SubjectAccessReviews are sent with: a rate
// limiter of its own (--access-review-qps) keeps the reviews that tenants'
// ServiceAccounts cause from using up the budget of the manager's client,
// which writes every metric's status.
func reviewClient(mgr ctrl.Manager, opts Options) (client.Client, error) {
	cfg := rest.CopyConfig(mgr.GetConfig())
	cfg.QPS, cfg.Burst, cfg.RateLimiter = opts.AccessReviewQPS, opts.AccessReviewBurst, nil
	c, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return nil, fmt.Errorf("creating the access review client: %w", err)
	}
	return c, nil
}

// accessNamespace returns informers.Options.TenantOf: a remote cluster's
// watches are charged to the namespace of the access that defines it,
// the first part of its key (controllers.ClusterKey,
// controllers.FederatedClusterKey); the local cluster's to nobody.
func accessNamespace(local string) func(cluster string) string {
	return func(cluster string) string {
		if cluster == local {
			return ""
		}
		ns, _, remote := strings.Cut(cluster, "/")
		if !remote {
			return ""
		}
		return ns
	}
}
