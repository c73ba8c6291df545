// Package events is the ResourceEventHandler: it turns the events of one
// shared watch (an object added, updated or deleted, or the full list
// after the watch started or relisted) into changes of the interested
// metrics' aggregates, and tells each metric whose series changed.
//
// The cost of an event is one evaluation per interested metric: never a
// LIST, never a walk over the other objects. The handler keeps no objects;
// it must be called with events of one watch in order (the informers
// package serialises them).
package events
