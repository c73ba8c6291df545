// Package managed finds the Crossplane managed resource kinds a cluster
// serves: the CustomResourceDefinitions that carry both categories
// "crossplane" and "managed". One Watcher per cluster keeps that set
// current from a single shared watch on CustomResourceDefinitions, so a
// managed kind installed or removed at run time is noticed without a
// restart and without any LIST after the first. The local cluster's
// Watcher runs for the operator's life; Watchers runs those of remote
// clusters, one per cluster connection, while some metric reads the
// cluster.
//
// It keeps, per CRD, only the few fields it needs (names, scope, served
// versions, categories), never the CRD's schema: Crossplane providers
// install hundreds of CRDs whose schemas weigh megabytes. What it keeps is
// bounded whatever a CRD carries (names as long as Kubernetes allows, at
// most 32 short names and served versions), since a remote cluster may be
// a tenant's.
//
// It must not watch managed resources themselves nor know about metrics:
// the ManagedMetric reconciler turns the kinds into shared watches through
// the DynamicInformerManager, like any other metric's.
package managed
