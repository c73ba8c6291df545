package informers

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
)

// NewDynamicInformer returns a shared informer of gvr in namespace (""
// for all) on client, for the small helper watches outside the Manager
// (CustomResourceDefinitions for managed kinds, the objects that
// discover federated clusters). tweak, when not nil, edits every LIST
// and WATCH (a label selector).
//
// Unlike dynamicinformer's, its Reflector lists and then watches, never
// streams the list (watch-list): after a failed streaming list client-go
// sleeps its backoff, up to 30 s, without watching its stop channel, so
// an informer that had been failing through an API server outage held
// the operator's shutdown for that long. On the list-then-watch path
// every wait ends with the context, and failures still reach the
// informer's watch error handler, which these watches use to report an
// unreachable cluster.
func NewDynamicInformer(client dynamic.Interface, gvr schema.GroupVersionResource, namespace string,
	tweak func(*metav1.ListOptions)) cache.SharedIndexInformer {
	res := client.Resource(gvr).Namespace(namespace)
	edit := func(o metav1.ListOptions) metav1.ListOptions {
		if tweak != nil {
			tweak(&o)
		}
		return o
	}
	lw := listThenWatch{&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return res.List(ctx, edit(o))
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return res.Watch(ctx, edit(o))
		},
	}}
	return cache.NewSharedIndexInformerWithOptions(lw, &unstructured.Unstructured{},
		cache.SharedIndexInformerOptions{ObjectDescription: gvr.String()})
}

// listThenWatch is a ListWatch that tells the Reflector not to use
// streaming lists.
type listThenWatch struct{ *cache.ListWatch }

// IsWatchListSemanticsUnSupported is true: see NewDynamicInformer.
func (listThenWatch) IsWatchListSemanticsUnSupported() bool { return true }
