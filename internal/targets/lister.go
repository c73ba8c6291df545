package targets

import (
	"context"
	"fmt"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/pager"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/remotelimit"
)

// PageSize is the number of objects one LIST request returns.
const PageSize = 500

// Lister lists objects of one cluster.
type Lister struct {
	mapper   meta.RESTMapper
	client   dynamic.Interface
	classify func(error) error
	// maxObjects bounds the objects one List returns (<= 0: no bound);
	// cluster names the cluster in its error.
	maxObjects int
	cluster    string

	// aliases remembers the kind each target written otherwise than the
	// API server spells it ("pod", "ConfigMaps") resolved to, so that only
	// the first resolution costs a discovery request.
	aliases sync.Map // schema.GroupVersionKind -> schema.GroupVersionKind
}

// Option configures a Lister.
type Option func(*Lister)

// WithErrors makes the Lister pass every error it cannot name a reason
// for through classify: a remote cluster's errors become conditions
// (ClusterUnreachable, Forbidden) instead of retries of a passing fault.
func WithErrors(classify func(error) error) Option {
	return func(l *Lister) { l.classify = classify }
}

// WithMaxObjects bounds the objects one List may return to max (the
// operator's --max-objects-per-watch; <= 0: no bound): a larger list
// fails with ObjectLimitExceeded rather than be held in memory whole.
// cluster names the cluster the Lister reads, for that error.
func WithMaxObjects(max int, cluster string) Option {
	return func(l *Lister) { l.maxObjects, l.cluster = max, cluster }
}

// NewLister returns a Lister that maps kinds with mapper and lists with
// client.
func NewLister(mapper meta.RESTMapper, client dynamic.Interface, opts ...Option) *Lister {
	l := &Lister{mapper: mapper, client: client}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Mapping resolves a kind to its resource, matching as kubectl does: the
// kind as written, else case-insensitively as a kind or a singular or
// plural resource name ("pod", "Pods", "configmap"). A kind the cluster
// does not serve is a TargetNotFound error.
func (l *Lister) Mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m, err := l.mapping(gvk)
	if err != nil {
		return nil, err
	}
	// The mapper may echo the kind as it was asked for (configmap): the
	// mapping names it as the API server does (ConfigMap), so that series
	// and objects carry one spelling whatever the spec wrote.
	if k, err := l.mapper.KindFor(m.Resource); err == nil && k.Kind != m.GroupVersionKind.Kind {
		c := *m
		c.GroupVersionKind = k
		return &c, nil
	}
	return m, nil
}

func (l *Lister) mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	if alias, ok := l.aliases.Load(gvk); ok {
		m, err := l.mapper.RESTMapping(alias.(schema.GroupVersionKind).GroupKind(), gvk.Version)
		if err == nil {
			return m, nil
		}
		l.aliases.Delete(gvk) // its CRD may be gone: resolve anew
	}
	m, err := l.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
		var canonical schema.GroupVersionKind
		canonical, err = l.mapper.KindFor(gvk.GroupVersion().WithResource(strings.ToLower(gvk.Kind)))
		if err == nil && canonical.Group != gvk.Group {
			// An empty group is a wildcard to the mapper, but means the
			// core group in a target.
			err = &meta.NoKindMatchError{GroupKind: gvk.GroupKind(), SearchedVersions: []string{gvk.Version}}
		}
		if err == nil {
			if m, err = l.mapper.RESTMapping(canonical.GroupKind(), gvk.Version); err == nil {
				l.aliases.Store(gvk, canonical)
				return m, nil
			}
		}
	}
	if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
		return nil, reason.New(v1alpha1.ReasonTargetNotFound,
			"the cluster serves no kind %s in version %q of group %q: check spec.target, or install the CRD that defines it",
			gvk.Kind, gvk.Version, gvk.Group)
	}
	if tl := remotelimit.As(err); tl != nil {
		return nil, reason.New(v1alpha1.ReasonResponseTooLarge,
			"resolving kind %s through the cluster's discovery: %s: the metric exports nothing until the kind resolves; "+
				"it is tried again by itself (or ask the platform admin to raise the flag)", gvk.Kind, tl.Error())
	}
	if err != nil {
		return nil, l.wrap(fmt.Errorf("resolving %s: %w", gvk, err))
	}
	return m, nil
}

func (l *Lister) wrap(err error) error {
	if l.classify != nil && !reason.Is(err) {
		return l.classify(err)
	}
	return err
}

// List returns the objects of mapping's resource in namespace ("" for all)
// that match labelSelector, page by page. Each object is its
// unstructured content.
func (l *Lister) List(ctx context.Context, m *meta.RESTMapping, namespace, labelSelector string) ([]map[string]any, error) {
	var ri dynamic.ResourceInterface = l.client.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace && namespace != "" {
		ri = l.client.Resource(m.Resource).Namespace(namespace)
	} else {
		namespace = ""
	}
	listed := 0
	p := pager.New(pager.SimplePageFunc(func(opts metav1.ListOptions) (runtime.Object, error) {
		list, err := ri.List(ctx, opts)
		if err == nil && l.maxObjects > 0 {
			// Counted before the page's objects are kept: a server that
			// ignores limit and sends everything in one page is refused
			// as well as one whose pages add up to too many.
			if listed += len(list.Items); listed > l.maxObjects {
				return nil, l.limitError(m, namespace)
			}
		}
		return list, err
	}))
	p.PageSize = PageSize
	var objs []map[string]any
	err := p.EachListItem(ctx, metav1.ListOptions{LabelSelector: labelSelector}, func(o runtime.Object) error {
		u := o.(*unstructured.Unstructured)
		// Nothing reads managedFields; dropping it early halves what a
		// large list keeps alive while it is evaluated.
		unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
		objs = append(objs, u.Object)
		return nil
	})
	if tl := remotelimit.As(err); tl != nil {
		return nil, l.tooLarge(m, namespace, tl)
	}
	switch {
	case reason.Is(err):
		return nil, err
	case apierrors.IsForbidden(err) && l.classify != nil:
		return nil, reason.ForbiddenRemoteTarget(m.Resource.GroupResource(), "list")
	case apierrors.IsForbidden(err):
		return nil, reason.ForbiddenTarget(m.Resource.GroupResource(), "list")
	case apierrors.IsNotFound(err):
		return nil, reason.New(v1alpha1.ReasonTargetNotFound,
			"resource %s is no longer served: its CRD may have been deleted", m.Resource.GroupResource().String())
	case err != nil:
		return nil, l.wrap(fmt.Errorf("listing %s: %w", m.Resource.GroupResource().String(), err))
	}
	return objs, nil
}

// tooLarge is the ResponseTooLarge of a List whose page the remote API
// server made larger than the operator reads (internal/remotelimit).
func (l *Lister) tooLarge(m *meta.RESTMapping, namespace string, err *remotelimit.Error) error {
	what := m.Resource.GroupResource().String()
	if namespace != "" {
		what += " in namespace " + namespace
	}
	return reason.New(v1alpha1.ReasonResponseTooLarge,
		"listing %s: %s: nothing of it is used and the metric exports nothing; every poll tries again and the metric comes back "+
			"by itself once the cluster answers within the limit (or ask the platform admin to raise the flag)", what, err.Error())
}

// limitError is the ObjectLimitExceeded of a List over maxObjects.
func (l *Lister) limitError(m *meta.RESTMapping, namespace string) error {
	what := m.Resource.GroupResource().String()
	if namespace != "" {
		what += " in namespace " + namespace
	}
	return reason.New(v1alpha1.ReasonObjectLimitExceeded,
		"the list of %s in cluster %s returned more than %d objects, the limit set by the operator's --max-objects-per-watch: "+
			"the metric exports nothing; every poll tries again and the metric comes back by itself once there are at most %d "+
			"(or raise the flag and restart the operator)", what, l.cluster, l.maxObjects, l.maxObjects)
}
