// Package informers is the DynamicInformerManager: one shared watch per
// (cluster, resource, namespace scope), however many metrics use it,
// reference-counted through the registry and stopped as soon as its last
// metric leaves or moves to another target.
//
// A watch here is a client-go Reflector whose store is the events
// handler: objects are evaluated as they arrive and then dropped, so
// memory grows with what metrics keep per object (a series and a value),
// not with the objects. A watch whose metrics read nothing but metadata
// uses the metadata API, which is far cheaper to decode; it is upgraded
// to full objects when a metric that needs them joins. A metric joining a
// running watch gets the current objects from one paginated LIST, made
// while the watch's events are held back so it never sees them out of
// order.
//
// The Manager is a manager Runnable that needs leader election; every
// watch stops with the manager's context.
package informers
