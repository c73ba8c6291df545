// Package sharding spreads the metrics over replicas of the operator,
// with Kubernetes Leases for membership: every replica is active and
// serves (reconciles, watches, exports on /metrics, pushes, writes
// status of) only the metrics it owns.
//
// Membership: each replica holds a Lease of its own, named
// <group>-<identity> in the operator's namespace and labelled
// GroupLabel=<group>, renews it every renew interval R, and lists the
// group's Leases at each renewal. A member is live while this replica has
// seen its renewTime change within the member's lease duration D, judged
// on this replica's own clock (clocks of two machines are never
// compared). A replica that stops cleanly deletes its Lease (Leave) after
// it has stopped pushing, so the others take over at once; the Lease of a
// killed replica expires after D and the others delete it then, so that
// a replica joining later does not count it live for another D (it cannot
// tell how old a renewal it sees for the first time is).
//
// Ownership: Owner gives each key (Kind/namespace/name, the four metric
// kinds) to one member of a view by rendezvous hashing, so a member
// joining or leaving moves only the keys it takes or leaves.
//
// Handover without duplicates: a replica never serves a key it does not
// own in its own view, and it claims a key it did not serve only when its
// view is settled: every member of the view has acknowledged that very
// view in its Lease (AppliedAnnotation, a hash of the member names), and
// a member acknowledges a view only once its reconcilers have dropped
// (Shard.Release) every key that view takes from it. Keys it already
// serves and still owns it keeps while views change. So when a replica
// joins, the others drop what it takes, acknowledge, and only then does it
// claim; when one is lost, the survivors claim its keys once its Lease
// has expired in their views and they all acknowledge the view without
// it. A replica that cannot renew its Lease stops serving everything
// (fencing) D−2R after the last renewal it sent, before anyone can count
// it gone (≥ D after that renewal reached the API server); it checks the
// deadline every R/2 whatever the API server does, leaving R/2 for its
// reconcilers to drop.
//
// Timing bounds: a joining replica's keys move after the others' next
// listing (≤ R), their drops, their acknowledgement (written at once) and
// the joiner's next listing (≤ R): about 2R, during which those keys are
// served by nobody (they are never served twice). A killed replica's keys
// are served again once its Lease has expired (≤ D after its last
// renewal, plus ≤ R until the survivors list), plus one acknowledgement
// round (≤ R) and a reconcile. A replica stopped cleanly hands over within
// about R.
//
// Status of the shared kinds (DataSink, RemoteClusterAccess,
// FederatedClusterAccess), which every replica resolves, is written by
// their Leads owner only, so replicas do not fight over it.
package sharding
