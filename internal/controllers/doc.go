// Package controllers holds the reconcilers of the operator's kinds. Each
// reconciler is short: it reads its object, hands the work to a component
// (datasink resolution, the evaluation engine, the coordinator) and patches
// status with a Ready condition whose reason says what is wrong.
//
// Reconcilers never build clients or exporters themselves; what they need
// is passed in when they are set up.
package controllers
