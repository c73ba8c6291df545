package controllers

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/access"
	"github.com/SAP/metrics-operator/internal/clusters"
	"github.com/SAP/metrics-operator/internal/reason"
)

// TokenRequesterRole is the ClusterRole (config/rbac/token_requester.yaml)
// that lets the operator request tokens in a namespace once bound there.
const TokenRequesterRole = "metrics-operator-token-requester"

// DefaultTokenLifetime is the lifetime the operator asks for the tokens of
// a remoteClusterConfig.
const DefaultTokenLifetime = time.Hour

// defaultRenewFraction is the share of a token's lifetime after which it is
// renewed: a fifth of it is left to renew in, through API server hiccups.
const defaultRenewFraction = 0.8

// RemoteClusterAccessReconciler resolves RemoteClusterAccesses into
// cluster definitions (clusters.Set.Define), requests and renews the
// tokens of remoteClusterConfig, probes the remote API server and reports
// the result in the Ready condition. Secrets are read with get, never
// listed or watched, so each access is resolved again every Recheck.
type RemoteClusterAccessReconciler struct {
	Client client.Client
	// Shard, if set, decides whether this replica writes the status.
	Shard    Shard
	Recorder events.EventRecorder
	Clusters *clusters.Set
	// Access refuses references into other namespaces; nil allows them.
	Access *access.Checker
	// Recheck is how often an access is resolved and probed again (zero:
	// one minute): Secret changes and outages are noticed within it.
	Recheck time.Duration
	// TokenLifetime is the lifetime asked for requested tokens (zero:
	// DefaultTokenLifetime; the API server may shorten or lengthen it).
	TokenLifetime time.Duration
	// RenewFraction is the share of a token's lifetime after which it is
	// renewed (zero: 0.8).
	RenewFraction float64
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	mu     sync.Mutex
	tokens map[types.NamespacedName]*issuedToken
}

// issuedToken is the current token of one access.
type issuedToken struct {
	// scope is what the token was requested for: ServiceAccount and
	// audience; another scope needs another token.
	scope   string
	token   string
	issued  time.Time
	expires time.Time
}

// renewAt is when a token issued at issued, expiring at expires, is
// renewed: after fraction of its lifetime.
func renewAt(issued, expires time.Time, fraction float64) time.Time {
	return issued.Add(time.Duration(float64(expires.Sub(issued)) * fraction))
}

// tokenDue reports whether a new token must be requested at now: there is
// none, it was requested for another ServiceAccount or audience, or
// fraction of its lifetime has passed.
func tokenDue(cur *issuedToken, scope string, now time.Time, fraction float64) bool {
	return cur == nil || cur.scope != scope || !now.Before(renewAt(cur.issued, cur.expires, fraction))
}

// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=remoteclusteraccesses,verbs=get;list;watch
// +kubebuilder:rbac:groups=metrics.cloud.sap,resources=remoteclusteraccesses/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create

// Requesting tokens (create serviceaccounts/token) is not granted here:
// cluster-wide it would let the operator act as any ServiceAccount.
// config/rbac/token_requester.yaml holds a ClusterRole an admin binds with
// a RoleBinding in each namespace whose ServiceAccounts remoteClusterConfig
// may use.

// ClusterKey is the key of the connection of a RemoteClusterAccess.
func ClusterKey(namespace, name string) string { return namespace + "/" + name }

// Reconcile resolves one RemoteClusterAccess.
func (r *RemoteClusterAccessReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := ClusterKey(req.Namespace, req.Name)
	rca := &v1alpha1.RemoteClusterAccess{}
	if err := r.Client.Get(ctx, req.NamespacedName, rca); err != nil {
		if apierrors.IsNotFound(err) {
			r.Clusters.Remove(key)
			r.forgetToken(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	def, tok, err := r.resolve(ctx, rca)
	if err != nil && !reason.Is(err) {
		// The local API server failed us: keep the last good definition.
		return ctrl.Result{}, err
	}
	if err == nil {
		if err = r.Clusters.Define(key, rca.ClusterDimension(), def); err == nil {
			err = r.Clusters.Probe(ctx, key)
		}
	} else {
		r.Clusters.Fail(key, err)
	}
	if err := r.writeStatus(ctx, rca, def, tok, err); err != nil {
		return ctrl.Result{}, err
	}
	next := cmp.Or(r.Recheck, time.Minute)
	if tok != nil {
		next = min(next, max(renewAt(tok.issued, tok.expires, r.fraction()).Sub(r.now()), time.Second))
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// resolve reads the access's Secrets (and requests a token) into a
// cluster definition.
func (r *RemoteClusterAccessReconciler) resolve(ctx context.Context, rca *v1alpha1.RemoteClusterAccess) (clusters.Definition, *issuedToken, error) {
	if err := r.Access.CheckReferences(rca.Namespace, access.RemoteClusterAccessReferences(&rca.Spec)...); err != nil {
		return clusters.Definition{}, nil, err
	}
	if ref := rca.Spec.KubeConfigSecretRef; ref != nil {
		ns := cmp.Or(ref.Namespace, rca.Namespace)
		k := cmp.Or(ref.Key, v1alpha1.DefaultKubeConfigKey)
		data, err := r.secretKey(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, k, "spec.kubeConfigSecretRef")
		if err != nil {
			return clusters.Definition{}, nil, err
		}
		def, err := clusters.FromKubeConfig(data, fmt.Sprintf("key %q of Secret %s/%s", k, ns, ref.Name))
		return def, nil, err
	}
	rc := rca.Spec.RemoteClusterConfig
	if rc == nil {
		return clusters.Definition{}, nil, reason.New(v1alpha1.ReasonInvalidKubeConfig,
			"set spec.kubeConfigSecretRef or spec.remoteClusterConfig")
	}
	secret := types.NamespacedName{Namespace: cmp.Or(rc.ClusterSecretRef.Namespace, rca.Namespace), Name: rc.ClusterSecretRef.Name}
	field := "spec.remoteClusterConfig.clusterSecretRef"
	host, err := r.secretKey(ctx, secret, "host", field)
	if err != nil {
		return clusters.Definition{}, nil, err
	}
	audience, err := r.secretKey(ctx, secret, "audience", field)
	if err != nil {
		return clusters.Definition{}, nil, err
	}
	ca, err := r.secretKey(ctx, secret, "caData", field)
	if err != nil {
		return clusters.Definition{}, nil, err
	}
	sa := types.NamespacedName{Namespace: cmp.Or(rc.ServiceAccountNamespace, rca.Namespace), Name: rc.ServiceAccountName}
	tok, err := r.token(ctx, types.NamespacedName{Namespace: rca.Namespace, Name: rca.Name}, sa, string(audience))
	if err != nil {
		return clusters.Definition{}, nil, err
	}
	def, err := clusters.FromClusterSecret(string(host), ca, tok.token)
	if err != nil {
		return clusters.Definition{}, nil, reason.New(v1alpha1.ReasonInvalidKubeConfig, "the cluster Secret %s: %s", secret, err.Error())
	}
	return def, tok, nil
}

// secretKey reads one key of a Secret.
func (r *RemoteClusterAccessReconciler) secretKey(ctx context.Context, name types.NamespacedName, key, field string) ([]byte, error) {
	return readSecretKey(ctx, r.Client, name, key, field)
}

// readSecretKey reads one key of a Secret with get; field names what
// named the Secret, for messages.
func readSecretKey(ctx context.Context, c client.Client, name types.NamespacedName, key, field string) ([]byte, error) {
	s := &corev1.Secret{}
	if err := c.Get(ctx, name, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, reason.New(v1alpha1.ReasonSecretNotFound, "the Secret %s named by %s does not exist", name, field)
		}
		if apierrors.IsForbidden(err) {
			return nil, reason.New(v1alpha1.ReasonForbidden, "the operator may not get the Secret %s named by %s", name, field)
		}
		return nil, fmt.Errorf("reading Secret %s: %w", name, err)
	}
	v, ok := s.Data[key]
	if !ok || len(v) == 0 {
		return nil, reason.New(v1alpha1.ReasonSecretKeyMissing, "the Secret %s named by %s has no key %q", name, field, key)
	}
	return v, nil
}

// token returns the access's current token for sa and audience,
// requesting a new one when there is none for them or it is due.
func (r *RemoteClusterAccessReconciler) token(ctx context.Context, rca, sa types.NamespacedName, audience string) (*issuedToken, error) {
	scope := sa.String() + "\x00" + audience
	r.mu.Lock()
	cur := r.tokens[rca]
	r.mu.Unlock()
	now := r.now()
	if !tokenDue(cur, scope, now, r.fraction()) {
		return cur, nil
	}
	seconds := int64(cmp.Or(r.TokenLifetime, DefaultTokenLifetime) / time.Second)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences: []string{audience}, ExpirationSeconds: &seconds}}
	obj := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: sa.Namespace, Name: sa.Name}}
	if err := r.Client.SubResource("token").Create(ctx, obj, tr); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			return nil, reason.New(v1alpha1.ReasonInvalidKubeConfig,
				"the ServiceAccount %s named by spec.remoteClusterConfig does not exist", sa)
		case apierrors.IsForbidden(err):
			return nil, reason.New(v1alpha1.ReasonForbidden,
				"the operator may not request tokens for the ServiceAccount %s: bind the ClusterRole %s to the operator's "+
					"ServiceAccount with a RoleBinding in namespace %s", sa, TokenRequesterRole, sa.Namespace)
		case apierrors.IsBadRequest(err), apierrors.IsInvalid(err):
			return nil, reason.New(v1alpha1.ReasonInvalidKubeConfig,
				"the API server refuses a token for the ServiceAccount %s and the cluster Secret's audience", sa)
		}
		return nil, fmt.Errorf("requesting a token for ServiceAccount %s: %w", sa, err)
	}
	if err := r.refuseLocalAudience(ctx, tr.Status.Token); err != nil {
		return nil, err
	}
	t := &issuedToken{scope: scope, token: tr.Status.Token, issued: now, expires: tr.Status.ExpirationTimestamp.Time}
	r.mu.Lock()
	if r.tokens == nil {
		r.tokens = map[types.NamespacedName]*issuedToken{}
	}
	r.tokens[rca] = t
	r.mu.Unlock()
	ctrl.LoggerFrom(ctx).Info("Token requested for remote cluster", "serviceAccount", sa.String(),
		"expires", t.expires.UTC().Format(time.RFC3339))
	return t, nil
}

// refuseLocalAudience refuses a token the local API server itself
// accepts. The token is sent to the host the cluster Secret names, which
// whoever wrote that Secret chooses: with the local API server's audience
// it would hand them the ServiceAccount's access to this cluster.
func (r *RemoteClusterAccessReconciler) refuseLocalAudience(ctx context.Context, token string) error {
	review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}
	if err := r.Client.Create(ctx, review); err != nil {
		return fmt.Errorf("reviewing the requested token's audience: %w", err)
	}
	if review.Status.Authenticated {
		return reason.New(v1alpha1.ReasonForbidden,
			"the cluster Secret's audience is accepted by the operator's own API server, so a token for it would be valid here too: "+
				"use an audience only the remote API server accepts")
	}
	return nil
}

func (r *RemoteClusterAccessReconciler) forgetToken(name types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.tokens, name)
}

func (r *RemoteClusterAccessReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *RemoteClusterAccessReconciler) fraction() float64 {
	if r.RenewFraction > 0 && r.RenewFraction < 1 {
		return r.RenewFraction
	}
	return defaultRenewFraction
}

// writeStatus patches the access's status and emits an event when Ready
// changes.
func (r *RemoteClusterAccessReconciler) writeStatus(ctx context.Context, rca *v1alpha1.RemoteClusterAccess,
	def clusters.Definition, tok *issuedToken, err error) error {
	if !leads(r.Shard, "RemoteClusterAccess", client.ObjectKeyFromObject(rca)) {
		return nil // every replica connects; one writes status
	}
	before := rca.DeepCopy()
	rca.Status.ObservedGeneration = rca.Generation
	rca.Status.Server = ""
	if def.Config != nil {
		rca.Status.Server = def.Server()
	}
	rca.Status.TokenExpirationTime = nil
	if tok != nil {
		rca.Status.TokenExpirationTime = &metav1.Time{Time: tok.expires}
	}
	cond := readyCondition(rca.Generation, err, v1alpha1.ReasonClusterUnreachable)
	if err == nil {
		cond.Message = "the remote API server answers with the credentials given"
	}
	if setCondition(&rca.Status.Conditions, cond) {
		if err == nil {
			ctrl.LoggerFrom(ctx).Info("Remote cluster connected", "cluster", ClusterKey(rca.Namespace, rca.Name),
				"clusterName", rca.ClusterDimension(), "server", rca.Status.Server)
		} else {
			ctrl.LoggerFrom(ctx).Info("Remote cluster not usable", "cluster", ClusterKey(rca.Namespace, rca.Name),
				"clusterName", rca.ClusterDimension(), "reason", cond.Reason)
		}
		if r.Recorder != nil {
			typ := corev1.EventTypeNormal
			if err != nil {
				typ = corev1.EventTypeWarning
			}
			r.Recorder.Eventf(rca, nil, typ, cond.Reason, "Resolve", "%s", cond.Message)
		}
	}
	if equality.Semantic.DeepEqual(before.Status, rca.Status) {
		return nil
	}
	return client.IgnoreNotFound(r.Client.Status().Patch(ctx, rca, client.MergeFrom(before)))
}

// SetupWithManager registers the reconciler.
func (r *RemoteClusterAccessReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.RemoteClusterAccess{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("remoteclusteraccess").
		WithOptions(controller.Options{MaxConcurrentReconciles: accessWorkers}).
		Complete(r)
}
