// Package sharding spreads the metrics over replicas of the operator,
// with Kubernetes Leases for membership: every replica is active and
// serves (reconciles, watches, exports on /metrics, pushes, writes
// status of) only the metrics it owns.
//
// Membership: each replica holds a Lease of its own, named
// <group>-<identity> in the operator's namespace and labelled
// GroupLabel=<group>, renews it every renew interval R, and watches the
// group's Leases. A member is live while this replica has seen its
// renewTime change within the member's lease duration D, judged on this
// replica's own clock (clocks of two machines are never compared). A
// replica that stops cleanly deletes its Lease (Leave) after it has
// stopped pushing, so the others take over at once; the Lease of a
// killed replica expires after D and the others delete it then, so that
// a replica joining later does not count it live for another D (it cannot
// tell how old a renewal it sees for the first time is). A watch that
// stops delivering (this replica's own renewals do not come back through
// it) freezes the view of the others, so that their Leases do not seem to
// expire while they are renewed. A replica serves nothing until its watch
// has delivered its own Lease once: before, it cannot tell the others'
// absence from their Leases not having arrived yet, and alone in its
// view it would claim every key.
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
// claim. When one is lost (its Lease expired or deleted) from a settled
// view, each survivor that has been a member throughout claims the lost
// one's keys it owns as soon as it sees the loss, without the round of
// acknowledgements: the others dropped those keys to acknowledge the
// settled view and cannot own them while the survivor, which outranks
// them on those keys, is in their views (TestShardLossIsClaimedAtOnce).
// A replica that cannot renew its Lease stops serving everything
// (fencing) D−2R after the last renewal it sent, before anyone can count
// it gone (≥ D after that renewal reached the API server); a timer
// fires at the deadline whatever the API server does, leaving 2R for its
// reconcilers to drop (TestMembershipOverTheAPIServer: with D = 4 s,
// R = 1 s, fenced 2.0 s after the cut, counted gone 4.0 s after it). D
// is at least 4R, so that the renewal sent R after the last one has an
// interval to come back before that deadline; a renewal may take until
// the deadline it would move (TestMembershipSurvivesSlowRenewals).
//
// Several holders of one key (a Metric's polling and event-driven
// reconcilers) share what serving it means: the coordinator's entry of
// the metric, which one publishes and either removes when it drops the
// key. So a key one holder drops because the view took it away (or this
// replica fenced itself) is drained: the others are told to drop it too,
// and no holder holds it again until all have; then they take it anew,
// if the view gives it back to this replica. A replica fenced
// and back in the same view before its slower holder got to the key
// would otherwise keep that holder's hold with the entry gone: the
// metric served by nobody (TestFencedMemberRejoinsWithEveryKey).
//
// Timing bounds: the watch delivers a joining replica's Lease and every
// acknowledgement within milliseconds, so a joiner's keys move after the
// others' drops and one acknowledgement round: well under R (measured
// 0.5–0.8 s from the old owner's last push to the new owner's first,
// mostly the joiner's first reconcile and push), during which those keys
// are served by nobody (they are never served twice). A killed replica's
// keys are served again once its Lease has expired, D after its last
// renewal was seen, plus a reconcile (measured 5.5–6.4 s with D = 6 s,
// R = 1 s). A replica stopped cleanly hands over within a reconcile
// (measured 0.3–0.9 s). With 3,000 metrics on a loaded machine (load
// 5–16 on two cores) the expiry alone is seen 5.1–6.5 s after the kill
// (D less the time since the last renewal, plus the watch's and the
// timer's delays), and the survivors then register the ~500 metrics each
// takes over in 0.5–1.8 s (median 0.9 s), so a killed replica's metrics
// are served again after 6.7–9.9 s (median 7.3 s over nine runs):
// more than D. Warm standby (below) cuts the registration.
//
// Warm standby (Options.WarmStandby): the floor of a killed replica's
// takeover is its lease, D after the last renewal the survivors saw,
// which came up to R before the kill; a survivor's expiry timer fires at
// that moment (the Membership logs how late: under 10 ms in most runs at
// 3,000 metrics and load 7-14, at most 140 ms). What is left above the
// floor is registering what the survivors take over: the reconcile,
// compile and LIST of each metric, 0.6-3.0 s for ~500 metrics per
// survivor at that load. With warm standby a member keeps ready the keys
// it would take over from a lost member (the runner-up in each key's
// rendezvous order; Shard.StandBy) and those it owns but may not serve
// before its view settles: their holders compile and aggregate them
// without publishing, pushing or writing anything, and publish them the
// moment Hold grants them, by the same rule as any claim, so nothing is
// ever served before the owner's Lease expired or it let go
// (TestShardStandByPreparesWhatItTakesOver). A holder that goes from
// serving a key to keeping it ready still releases its hold: the view
// waits for the hold, whatever the holder published (a polling or a
// refused metric publishes nothing for events, and one that kept it held
// kept every replica from settling the view, so the keys a joiner took
// were served by nobody; TestStandbyReleasesWhatItNeverPublished in
// internal/controllers). Publishing ~500 that way
// took 0.01-0.75 s at the same load, mostly the coordinator's publishes;
// so a killed replica's metrics were all published 5.7-6.5 s after the
// kill with D = 6 s (five runs, median 6.2 s; the floor was 5.5-6.0 s),
// against 6.3-8.6 s without (four runs). Measured again with six
// polling and four refused Metrics beside the 3,000 (their takeover is
// part of every metric served), at load 10-20: every metric served
// 6.5-6.9 s after the kill (three runs, median 6.8 s; the survivors
// published the ~500 each kept ready 0.12-1.0 s after the expiry),
// against 6.9-9.6 s without (median 9.1 s).
// At low load (1-minute load 2.8-5.6, nothing else running but the
// test), with 3,000 metrics and the two modes run alternately, every
// metric was served 5.50/6.09/6.23 s after the kill with warm standby
// and 6.09/6.10/6.15 s without: the survivors counted the killed
// replica gone 5.16-5.95 s after the kill (D less the time its last
// renewal came before the kill) and served all it had 0.10-0.35 s later
// (warm standby's gain is small here: registering ~500 metrics is fast
// on an idle machine). So a takeover ends within D after the kill only
// when the kill came more than those 0.1-0.35 s after a renewal: in
// five of these six runs it came later than D, by 0.09-0.23 s.
// The price: every member aggregates the keys it stands by for besides
// its own, twice the watches' evaluation and memory with three members.
//
// Status of the shared kinds (DataSink, RemoteClusterAccess,
// FederatedClusterAccess), which every replica resolves, is written by
// their Leads owner only, so replicas do not fight over it; after a
// change of members the new owner writes it at its next recheck.
//
// What stays per replica: the arbitration of two metrics exporting the
// same name (DuplicateName, oldest first) and the series budgets
// (--max-series-total, --max-series-per-namespace) see only the metrics
// of one replica, so two metrics of one name owned by different replicas
// are both exported, and each replica has the whole budget.
package sharding
