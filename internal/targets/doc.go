// Package targets reads a metric's target objects from a cluster for the
// polling path: it resolves a GroupVersionKind to a resource through the
// manager's discovery-backed REST mapper (which refreshes on a miss, so
// CRDs installed later are found) and lists with pagination, sending the
// label selector to the API server. Field selectors are evaluated in
// memory by the evaluation engine, since the API server supports only a
// few fields per resource.
//
// Failures a user can fix come back as *reason.Error (TargetNotFound,
// Forbidden); others are wrapped.
package targets
