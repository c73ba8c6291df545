// Package events is the ResourceEventHandler: it turns the events of one
// shared watch (an object added, updated or deleted, or the full list
// after the watch started or relisted) into changes of the interested
// metrics' aggregates, and tells each metric whose series changed.
//
// The cost of an event does not depend on the metrics that cannot want
// its object: the registry's Index names the groups of metrics that may
// (by namespace and label selector terms), and the handler adds the
// groups that held the object before, so an update that relabels an
// object out of a selector still removes it. Metrics of identical
// compiled specs form one group and share one state
// (evaluation.Aggregate.Attach): an event is evaluated once per group,
// then each metric of it whose series changed is told. Never a LIST,
// never a walk over the other objects.
//
// The handler keeps no objects. Per watch it interns the objects' UIDs as
// small dense IDs (evaluation.Keys: one string per object for the watch,
// and every state keys its entries by the 4-byte ID) and keeps, by ID,
// the IDs of the groups that hold each object; this lives in the
// registry beside the watch's subscriptions and goes with them. It must be called with
// events of one watch in order (the informers package serialises them).
//
// Each metric's evaluation is guarded on its own: a panic (a bug met by
// some user's spec and object) disables the metrics that read the state
// being evaluated (those of one spec), which report InvalidProjection
// without quoting the object and are counted in
// metrics_operator_evaluation_panics_total; the watch and the other
// metrics on it go on. A metric is evaluated again when its spec changes
// (a new subscription).
package events
