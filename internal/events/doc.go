// Package events is the ResourceEventHandler: it turns the events of one
// shared watch (an object added, updated or deleted, or the full list
// after the watch started or relisted) into changes of the interested
// metrics' aggregates, and tells each metric whose series changed.
//
// The cost of an event is one evaluation per interested metric: never a
// LIST, never a walk over the other objects. The handler keeps no objects;
// it must be called with events of one watch in order (the informers
// package serialises them).
//
// Each metric's evaluation is guarded on its own: a panic (a bug met by
// some user's spec and object) disables that metric's subscription, which
// reports InvalidProjection without quoting the object and is counted in
// metrics_operator_evaluation_panics_total; the watch and the other
// metrics on it go on. The metric is evaluated again when its spec
// changes (a new subscription).
package events
