package controllers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/access"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/evaluation"
	"github.com/SAP/metrics-operator/internal/federation"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/targets"
)

const federatedClusterAccessKind = "FederatedClusterAccess"

// probeParallelism bounds the clusters of one access probed at once: an
// unreachable cluster's probe may take its full timeout.
const probeParallelism = 8

// FederatedClusterAccessReconciler discovers the clusters of
// FederatedClusterAccesses from local objects, read from a shared
// discovery watch (federation.Watches), defines one connection per
// discovered object in clusters.Set, probes it, records the access's
// clusters in federation.Members and reports them in status. Secrets are
// read with get, never listed or watched, so each access is resolved
// again every Recheck.
type FederatedClusterAccessReconciler struct {
	Client client.Client
	// Shard, if set, decides whether this replica writes the status.
	Shard    Shard
	Recorder events.EventRecorder
	Clusters *clusters.Set
	// Lister resolves the target kind in the local cluster.
	Lister  *targets.Lister
	Watches *federation.Watches
	Members *federation.Members
	// Access authorizes the discovery watch for the access's namespace
	// and refuses references into other namespaces; nil allows all.
	Access *access.Checker
	// Recheck is how often an access is resolved and probed again (zero:
	// one minute): Secret changes and outages are noticed within it.
	Recheck time.Duration
	// MaxClusters is the most clusters one access connects to, the first
	// discovered objects by namespace and name; zero or less: no limit.
	MaxClusters int

	mu    sync.Mutex
	queue workqueue.TypedRateLimitingInterface[reconcile.Request]
	// keys are the connection keys each access defined.
	keys map[types.NamespacedName]map[string]bool
}

// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=federatedclusteraccesses,verbs=get;list;watch
// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=federatedclusteraccesses/status,verbs=get;patch;update

// FederatedClusterKey is the connection key of the cluster an access
// discovered from an object: no two accesses, and no RemoteClusterAccess
// (whose keys have one slash), share it.
func FederatedClusterKey(fca types.NamespacedName, objNamespace, objName string) string {
	return fca.Namespace + "/" + fca.Name + "/" + objNamespace + "/" + objName
}

// discovered is one object that stands for a cluster.
type discovered struct {
	obj  *unstructured.Unstructured
	key  string
	name string
}

// Reconcile discovers the clusters of one FederatedClusterAccess.
func (r *FederatedClusterAccessReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	nn := req.NamespacedName
	user := federatedClusterAccessKind + "/" + nn.String()
	fca := &v1alpha1.FederatedClusterAccess{}
	if err := r.Client.Get(ctx, nn, fca); err != nil {
		if apierrors.IsNotFound(err) {
			r.Watches.Release(user)
			r.keep(nn, nil)
			r.Access.Forget(federatedClusterAccessKind, nn)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	next := cmp.Or(r.Recheck, time.Minute)
	objs, err := r.discover(ctx, fca, user)
	switch {
	case errors.Is(err, access.ErrPending):
		// The Checker sends the access back once its access is decided.
		return ctrl.Result{RequeueAfter: next}, nil
	case errors.Is(err, federation.ErrNotSynced):
		var failed *federation.NotSyncedError
		if !errors.As(err, &failed) {
			// The watch sends the access back once it has synced.
			return ctrl.Result{RequeueAfter: next}, nil
		}
		// It keeps retrying; meanwhile the status says why it waits.
		r.keep(nn, nil)
		return ctrl.Result{RequeueAfter: next}, r.writeStatus(ctx, fca, nil, 0, discoveryError(failed.Err))
	case err != nil && !reason.Is(err):
		return ctrl.Result{}, err
	}
	var found []v1alpha1.DiscoveredCluster
	total := len(objs)
	if err != nil {
		r.Watches.Release(user)
		r.keep(nn, nil)
	} else {
		objs, err = r.limit(objs)
		found = r.connect(ctx, fca, objs)
	}
	if err := r.writeStatus(ctx, fca, found, total, err); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// discover returns the objects that stand for the access's clusters, from
// its discovery watch.
func (r *FederatedClusterAccessReconciler) discover(ctx context.Context, fca *v1alpha1.FederatedClusterAccess, user string) ([]discovered, error) {
	spec := &fca.Spec
	if err := r.Access.CheckReferences(fca.Namespace, access.Reference{Field: "spec.namespace", Namespace: spec.Namespace}); err != nil {
		return nil, err
	}
	mapping, err := r.Lister.Mapping(spec.Target.GVK())
	if err != nil {
		return nil, err
	}
	if mapping.Resource.Group == "" && mapping.Resource.Resource == "secrets" {
		return nil, reason.New(v1alpha1.ReasonSecretDataForbidden,
			"spec.target: Secrets cannot stand for clusters, the operator reads Secrets only by name: "+
				"use objects that name the Secret, with spec.secretRefPath")
	}
	ns := scopeNamespace(mapping, spec.Namespace)
	ev, err := evaluation.Compile(evaluation.Spec{Namespace: ns, LabelSelector: spec.LabelSelector,
		FieldSelector: spec.FieldSelector, Target: mapping.GroupVersionKind.GroupKind()})
	if err != nil {
		var ce *evaluation.CompileError
		if errors.As(err, &ce) {
			return nil, reason.New(ce.Reason, "%s", ce.Error())
		}
		return nil, err
	}
	err = r.Access.Authorize(ctx, access.Request{Kind: federatedClusterAccessKind,
		Metric: types.NamespacedName{Namespace: fca.Namespace, Name: fca.Name}, Resource: mapping.Resource.GroupResource(), Namespace: ns})
	if err != nil {
		return nil, err
	}
	nn := types.NamespacedName{Namespace: fca.Namespace, Name: fca.Name}
	r.Watches.Ensure(user, federation.WatchKey{GVR: mapping.Resource, Namespace: ns, LabelSelector: strings.TrimSpace(spec.LabelSelector)},
		func() { r.enqueue(nn) })
	objs, err := r.Watches.Objects(user)
	if err != nil {
		return nil, err
	}
	var out []discovered
	names := map[string]int{}
	for _, o := range objs {
		if ev.Matches(o.Object) {
			out = append(out, discovered{obj: o, key: FederatedClusterKey(nn, o.GetNamespace(), o.GetName())})
			names[o.GetName()]++
		}
	}
	for i := range out {
		out[i].name = clusterName(out[i].obj.GetNamespace(), out[i].obj.GetName(), names[out[i].obj.GetName()])
	}
	slices.SortFunc(out, func(a, b discovered) int {
		return cmp.Or(cmp.Compare(a.obj.GetNamespace(), b.obj.GetNamespace()), cmp.Compare(a.obj.GetName(), b.obj.GetName()))
	})
	return out, nil
}

// limit keeps the first MaxClusters discovered objects (they are sorted by
// namespace and name, so the same ones stay connected while others come
// and go after them) and says why the others are left out.
func (r *FederatedClusterAccessReconciler) limit(objs []discovered) ([]discovered, error) {
	if r.MaxClusters <= 0 || len(objs) <= r.MaxClusters {
		return objs, nil
	}
	return objs[:r.MaxClusters], reason.New(v1alpha1.ReasonClusterLimitExceeded,
		"%d objects match spec.target, more than %d, the most clusters the operator connects to for one access (--max-clusters-per-access): "+
			"the first %d by namespace and name are connected and listed in status.clusters, the others are left out; "+
			"narrow spec.target with spec.namespace or the selectors, or split the access", len(objs), r.MaxClusters, r.MaxClusters)
}

// discoveryError turns the failure of a discovery watch's list into the
// access's condition, without quoting the API server.
func discoveryError(err error) error {
	switch {
	case apierrors.IsForbidden(err):
		return reason.New(v1alpha1.ReasonForbidden,
			"the operator may not list and watch spec.target: grant its ServiceAccount list and watch on it")
	case apierrors.IsNotFound(err):
		return reason.New(v1alpha1.ReasonTargetNotFound, "the API server does not serve spec.target any more")
	}
	return reason.New(v1alpha1.ReasonClusterUnreachable,
		"the discovery watch on spec.target cannot list its objects yet; it retries by itself")
}

// clusterName is the "cluster" dimension of a cluster discovered from the
// object namespace/name, when sameName discovered objects have its name:
// the name alone, or "<namespace>/<name>" when objects in other
// namespaces have the same name, so that no two clusters of an access
// share a dimension value.
func clusterName(namespace, name string, sameName int) string {
	if sameName > 1 && namespace != "" {
		return namespace + "/" + name
	}
	return name
}

// connect defines and records a connection for each discovered object,
// removes those of objects that went, probes the connections and returns
// the clusters' status. The clusters are recorded (federation.Members)
// before the probes end, so the federated metrics start reading them
// without waiting for the slowest probe.
func (r *FederatedClusterAccessReconciler) connect(ctx context.Context, fca *v1alpha1.FederatedClusterAccess, objs []discovered) []v1alpha1.DiscoveredCluster {
	nn := types.NamespacedName{Namespace: fca.Namespace, Name: fca.Name}
	out := make([]v1alpha1.DiscoveredCluster, len(objs))
	errs := make([]error, len(objs))
	members := make([]federation.Cluster, len(objs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, probeParallelism)
	for i, d := range objs {
		members[i] = federation.Cluster{Key: d.key, Name: d.name}
		def, err := r.resolve(ctx, fca, d.obj)
		switch {
		case err == nil:
			err = r.Clusters.Define(d.key, d.name, def)
		case reason.Is(err):
			r.Clusters.Fail(d.key, err)
		default:
			// The local API server failed us: keep the last definition.
			err = reason.New(v1alpha1.ReasonClusterUnreachable, "the cluster's Secret cannot be read from the local API server now: retrying")
		}
		if err != nil {
			errs[i] = err
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = r.Clusters.Probe(ctx, d.key)
		}()
	}
	// The metrics read the clusters defined now, each for itself; a
	// cluster whose probe hangs must not hold back the others'.
	r.keep(nn, members)
	wg.Wait()
	for i, d := range objs {
		c := v1alpha1.DiscoveredCluster{Name: d.obj.GetName(), Namespace: d.obj.GetNamespace(), ClusterName: d.name, Ready: errs[i] == nil}
		if errs[i] != nil {
			c.Reason = reason.Of(errs[i], v1alpha1.ReasonClusterUnreachable)
			c.Message = capMessage(errs[i].Error())
		}
		out[i] = c
	}
	return out
}

// keep records members as the clusters of access, removing the
// connections of the clusters it no longer has.
func (r *FederatedClusterAccessReconciler) keep(nn types.NamespacedName, members []federation.Cluster) {
	now := make(map[string]bool, len(members))
	for _, m := range members {
		now[m.Key] = true
	}
	r.mu.Lock()
	if r.keys == nil {
		r.keys = map[types.NamespacedName]map[string]bool{}
	}
	prev := r.keys[nn]
	if len(now) == 0 {
		delete(r.keys, nn)
	} else {
		r.keys[nn] = now
	}
	r.mu.Unlock()
	r.Members.Set(nn, members)
	for k := range prev {
		if !now[k] {
			r.Clusters.Remove(k)
		}
	}
}

// resolve reads the kubeconfig of the cluster obj stands for.
func (r *FederatedClusterAccessReconciler) resolve(ctx context.Context, fca *v1alpha1.FederatedClusterAccess, obj *unstructured.Unstructured) (clusters.Definition, error) {
	ref := obj.GetName()
	if obj.GetNamespace() != "" {
		ref = obj.GetNamespace() + "/" + ref
	}
	if err := r.Access.CheckReferences(fca.Namespace, access.Reference{Field: "the namespace of discovered object " + ref, Namespace: obj.GetNamespace()}); err != nil {
		return clusters.Definition{}, err
	}
	if p := fca.Spec.KubeConfigPath; p != "" {
		v, found, _ := unstructured.NestedFieldNoCopy(obj.Object, dotPath(p)...)
		var data []byte
		switch v := v.(type) {
		case string:
			data = []byte(v)
		case map[string]any:
			var err error
			if data, err = json.Marshal(v); err != nil {
				return clusters.Definition{}, reason.New(v1alpha1.ReasonInvalidKubeConfig, "the field %s of %s cannot be encoded", p, ref)
			}
		default:
			if !found || v == nil {
				return clusters.Definition{}, reason.New(v1alpha1.ReasonInvalidKubeConfig,
					"the object %s has no field %s (spec.kubeConfigPath)", ref, p)
			}
			return clusters.Definition{}, reason.New(v1alpha1.ReasonInvalidKubeConfig,
				"the field %s of %s is neither a string nor an object (spec.kubeConfigPath)", p, ref)
		}
		return clusters.FromKubeConfig(data, fmt.Sprintf("field %s of %s", p, ref))
	}
	p := fca.Spec.SecretRefPath
	v, _, _ := unstructured.NestedFieldNoCopy(obj.Object, dotPath(p)...)
	m, _ := v.(map[string]any)
	name, _ := m["name"].(string)
	if name == "" {
		return clusters.Definition{}, reason.New(v1alpha1.ReasonSecretNotFound,
			"the field %s of %s names no Secret: it must be an object with a name (spec.secretRefPath)", p, ref)
	}
	ns, _ := m["namespace"].(string)
	ns = cmp.Or(ns, obj.GetNamespace())
	if ns == "" {
		return clusters.Definition{}, reason.New(v1alpha1.ReasonSecretNotFound,
			"the field %s of the cluster-scoped %s names no namespace for its Secret (spec.secretRefPath)", p, ref)
	}
	if err := r.Access.CheckReferences(fca.Namespace, access.Reference{Field: "the Secret namespace in field " + p + " of " + ref, Namespace: ns}); err != nil {
		return clusters.Definition{}, err
	}
	key, _ := m["key"].(string)
	key = cmp.Or(key, v1alpha1.DefaultKubeConfigKey)
	field := fmt.Sprintf("field %s of %s", p, ref)
	data, err := readSecretKey(ctx, r.Client, types.NamespacedName{Namespace: ns, Name: name}, key, field)
	if err != nil {
		return clusters.Definition{}, err
	}
	return clusters.FromKubeConfig(data, fmt.Sprintf("the Secret named by %s", field))
}

// dotPath splits a kubeConfigPath or secretRefPath into field names.
func dotPath(p string) []string { return strings.Split(strings.TrimPrefix(p, "."), ".") }

// writeStatus patches the access's status and emits an event when Ready
// changes. total counts the discovered clusters, found only those
// connected.
func (r *FederatedClusterAccessReconciler) writeStatus(ctx context.Context, fca *v1alpha1.FederatedClusterAccess,
	found []v1alpha1.DiscoveredCluster, total int, err error) error {
	if !leads(r.Shard, "FederatedClusterAccess", client.ObjectKeyFromObject(fca)) {
		return nil // every replica discovers; one writes status
	}
	before := fca.DeepCopy()
	st := &fca.Status
	st.ObservedGeneration = fca.Generation
	st.Clusters = found
	st.ClusterCount = int32(max(total, len(found)))
	st.ReadyClusterCount = 0
	var first *v1alpha1.DiscoveredCluster
	for i := range found {
		if found[i].Ready {
			st.ReadyClusterCount++
		} else if first == nil {
			first = &found[i]
		}
	}
	cond := readyCondition(fca.Generation, err, v1alpha1.ReasonClusterUnreachable)
	switch {
	case err != nil:
	case first != nil:
		cond = readyCondition(fca.Generation, reason.New(first.Reason, "%d of %d clusters are not ready, see status.clusters; the first, %s: %s",
			st.ClusterCount-st.ReadyClusterCount, st.ClusterCount, discoveredRef(first), first.Message), v1alpha1.ReasonClusterUnreachable)
	default:
		cond.Message = fmt.Sprintf("%d clusters discovered, all ready", st.ClusterCount)
	}
	if setCondition(&st.Conditions, cond) {
		ctrl.LoggerFrom(ctx).Info("Federated clusters changed", "access", client.ObjectKeyFromObject(fca).String(),
			"clusters", st.ClusterCount, "ready", st.ReadyClusterCount, "reason", cond.Reason)
		if r.Recorder != nil {
			typ := corev1.EventTypeNormal
			if cond.Status != "True" {
				typ = corev1.EventTypeWarning
			}
			r.Recorder.Eventf(fca, nil, typ, cond.Reason, "Discover", "%s", cond.Message)
		}
	}
	if equality.Semantic.DeepEqual(before.Status, fca.Status) {
		return nil
	}
	return client.IgnoreNotFound(r.Client.Status().Patch(ctx, fca, client.MergeFrom(before)))
}

func discoveredRef(c *v1alpha1.DiscoveredCluster) string {
	if c.Namespace == "" {
		return c.Name
	}
	return c.Namespace + "/" + c.Name
}

func (r *FederatedClusterAccessReconciler) enqueue(nn types.NamespacedName) {
	r.mu.Lock()
	q := r.queue
	r.mu.Unlock()
	if q != nil {
		q.Add(reconcile.Request{NamespacedName: nn})
	}
}

// SetupWithManager registers the reconciler and the discovery watches.
func (r *FederatedClusterAccessReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.Add(r.Watches); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.FederatedClusterAccess{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("federatedclusteraccess").
		WithOptions(controller.Options{MaxConcurrentReconciles: accessWorkers}).
		// A discovered object that appears, changes or goes is seen at once.
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			r.mu.Lock()
			r.queue = q
			r.mu.Unlock()
			return nil
		}))
	if r.Access != nil {
		b = b.WatchesRawSource(r.Access.Source(federatedClusterAccessKind))
	}
	return b.Complete(r)
}
