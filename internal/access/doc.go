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
// two reviews (list, watch) between them. The Checker, a manager Runnable,
// reviews every cached decision again each period (one after the other,
// within the operator's API request budget); when a decision flips, the
// metrics depending on it are sent to their reconcilers again, so a
// revoked RoleBinding turns them Forbidden and a new one makes them Ready
// without a restart.
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
