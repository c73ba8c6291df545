// Package registry is the TargetRegistry: which metric wants objects from
// which shared watch. A watch is keyed by cluster, resource and namespace
// scope (InformerKey); each metric holds one Subscription on one key, with
// its compiled evaluator and incremental aggregate.
//
// The event path asks Index(key) for every event: it reads an immutable
// snapshot without locking, so its cost does not depend on how many
// metrics watch other resources, and the Index groups the key's metrics
// by compiled spec and indexes the groups by namespace and label selector
// terms, so that an event is evaluated only for the groups that may want
// its object. The registry holds no objects (the events handler keeps its
// per-object bookkeeping in WatchState, which goes with the key's last
// subscription) and starts no watches; the informers package does that.
//
// A subscription that Register replaced or Unregister dropped is retired:
// none of its callbacks runs afterwards, so a LIST still running for a
// metric that was deleted, renamed or switched to polling cannot publish
// it again.
package registry
