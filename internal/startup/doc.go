// Package startup holds the operator's shared watches back while its
// reconcilers register the metrics that were there when it started (or
// took over as leader), so that each watch lists its resource once for
// all of them.
//
// Without it the first metric reconciled starts its watch at once, the
// others register while that watch lists, and they need a second LIST of
// their own (a join fill; and a watch started metadata-only is restarted
// when a metric needing full objects comes later). A Gate lists the
// metric objects of the four kinds from the manager's cache once it is
// synced, and opens when the reconciler of each has settled it: registered
// it on its watch, or found there is nothing to register (deleted,
// polling, refused). It never waits for long on a metric that does not
// settle: it opens anyway once no metric has settled for a short while,
// and after a fixed limit in any case, so a broken reconciler delays the
// watches by seconds, never blocks them. A sharded replica registers the
// metrics of its share only once its view of the members has settled; a
// reconciler does not count such a metric as settled before, and the gate
// waits for the view past the quiet spell (Options.Unsettled), so a
// replica that joins lists once for the metrics it takes. Metrics created after the list
// are not waited for; they join the running watches as any new metric
// does.
//
// The Gate does not start watches itself: the informer Manager waits for
// its Open channel (informers.Options.Registered).
package startup
