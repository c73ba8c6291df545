// Package access decides whether a metric may read what it asks for, on
// behalf of the namespace it lives in.
//
// A metric reads as a ServiceAccount of its own namespace: its
// spec.serviceAccountName, else the operator's --default-service-account.
// Before a reconciler lists a target or registers a metric on a shared
// watch, it asks the Checker, which asks the API server with a
// SubjectAccessReview whether that ServiceAccount may list and watch the
// target resource in the metric's namespace scope (all namespaces when the
// metric names none). Decisions are cached per ServiceAccount, resource
// and namespace, so a thousand metrics of one tenant on one resource cost
// two reviews (list, watch) between them. Reviews never block a
// reconciler: an undecided scope is queued and Authorize says ErrPending;
// the Checker, a manager Runnable, reviews the queue on its own workers
// with a rate limit of its own (--access-review-qps), in turns per tenant
// namespace, so a tenant whose metrics name a thousand ServiceAccounts
// waits for its own reviews while every other tenant's go ahead. Once a
// scope is decided its metrics are sent to their reconcilers again. Every
// decision is reviewed again each period; when one flips, the metrics
// depending on it are sent to their reconcilers again, so a revoked
// RoleBinding turns them Forbidden and a new one makes them Ready without
// a restart.
//
// Authorization is per metric; watches stay per resource. The Checker
// never reads targets and never opens a watch: the operator keeps reading
// with its own credentials through one shared watch per resource and
// namespace, and the review only gates which metrics may see the result.
// With neither a spec.serviceAccountName nor a default ServiceAccount, no
// review is made and the operator's own access applies, as without this
// package.
//
// The package also holds the policy for references across namespaces
// (--no-cross-namespace-refs): CheckReferences refuses a reference whose
// namespace is not the referring object's own.
package access
