package informers

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/SAP/metrics-operator/internal/registry"
)

// watchListTimeout bounds one streamed list: the server ends the stream
// after it, and the list is made again (a list of any size the operator
// can hold streams within seconds).
const watchListTimeout = 5 * time.Minute

// errWatchListUnsupported: the API server refused a streamed list (a
// server older than Kubernetes 1.27, or one with the WatchList feature
// off); the informer pages instead from then on.
var errWatchListUnsupported = errors.New("the API server does not stream lists")

// listLocked reads every object of the resource into subs, once: as a
// streamed list (a watch that starts with the current objects, served by
// the API server from its watch cache in one response) where the server
// offers it, else page by page. Both apply each object as it arrives and
// keep none, so a list of any size costs one object (or one page) of
// memory; the Reflector's own WatchList would gather them all in a store.
func (i *informer) listLocked(ctx context.Context, subs []*registry.Subscription) (int, string, error) {
	if !i.pageOnly {
		n, rv, err := i.watchListLocked(ctx, subs)
		if !errors.Is(err, errWatchListUnsupported) {
			return n, rv, err
		}
		i.pageOnly = true
		ctrl.Log.WithName("informers").WithValues(i.key.LogValues()...).Info(
			"The API server does not stream lists; listing page by page", "reason", err.Error())
	}
	return i.pageLocked(ctx, subs, false)
}

// watchListLocked makes one streamed list: a watch with sendInitialEvents
// delivers an ADDED event per current object, then a bookmark marked as
// the end of the initial events, whose resource version the Reflector
// watches from. Anything else before that bookmark ends the list with an
// error (the Reflector retries).
func (i *informer) watchListLocked(ctx context.Context, subs []*registry.Subscription) (int, string, error) {
	send, timeout := true, int64(watchListTimeout.Seconds())
	// The server ends the stream after timeout; a remote server that does
	// not (a tenant's cluster) must not hold the watch's lock for longer.
	ctx, cancel := context.WithTimeout(ctx, watchListTimeout+30*time.Second)
	defer cancel()
	w, err := i.watch(ctx, metav1.ListOptions{
		SendInitialEvents:    &send,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
		AllowWatchBookmarks:  true,
		TimeoutSeconds:       &timeout,
	})
	if err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			return 0, "", fmt.Errorf("%w: %w", errWatchListUnsupported, err)
		}
		return 0, "", err
	}
	defer w.Stop()
	relist := i.handler.BeginRelist(i.key, subs)
	n := 0
	for {
		var ev watch.Event
		var open bool
		select {
		case <-ctx.Done():
			return n, "", ctx.Err()
		case ev, open = <-w.ResultChan():
		}
		if !open {
			return n, "", fmt.Errorf("the streamed list of %s ended after %d objects, before its last", i.key.GVR.Resource, n)
		}
		switch ev.Type {
		case watch.Added:
			if i.over(n+1) || i.charge(n+1) {
				return n, "", errObjectLimit
			}
			if obj := i.toMap(ev.Object); obj != nil {
				relist.Add(obj)
				n++
			}
		case watch.Bookmark:
			acc, err := meta.Accessor(ev.Object)
			if err != nil {
				return n, "", err
			}
			if acc.GetAnnotations()[metav1.InitialEventsAnnotationKey] == "true" {
				relist.Finish()
				return n, acc.GetResourceVersion(), nil
			}
		case watch.Error:
			err := apierrors.FromObject(ev.Object)
			if n == 0 && (apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)) {
				return 0, "", fmt.Errorf("%w: %w", errWatchListUnsupported, err)
			}
			return n, "", err
		default:
			return n, "", fmt.Errorf("the streamed list of %s sent a %s event before its last object", i.key.GVR.Resource, ev.Type)
		}
	}
}
