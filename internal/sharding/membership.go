package sharding

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Label and annotation of member Leases.
const (
	// GroupLabel marks a Lease as a shard member; its value is the group.
	GroupLabel = "metrics.cloud.sap/shard-group"
	// AppliedAnnotation holds the view (a hash of the member names) whose
	// releases the member has completed.
	AppliedAnnotation = "metrics.cloud.sap/shard-view"
)

// MinRenewals is the least lease duration in renew intervals. With three,
// a member's fencing deadline (two intervals before its Lease expires)
// fell on the moment its next renewal was sent, so it fenced itself for
// the round trip of every renewal, dropping everything it served.
const MinRenewals = 4

// Options configure a Membership.
type Options struct {
	// Client writes this replica's Lease and watches the group's.
	Client kubernetes.Interface
	// Namespace holds the Leases; Group names the set of replicas that
	// share metrics (default "metrics-operator").
	Namespace, Group string
	// Identity is this replica's member name (a pod name); the Lease is
	// named Group-Identity, made a valid object name.
	Identity string
	// LeaseDuration is how long a member that stopped renewing counts as
	// live (whole seconds, as a Lease holds it); RenewInterval is how
	// often members renew. LeaseDuration must be at least four
	// RenewIntervals: a member fences itself LeaseDuration minus two
	// intervals after its last renewal, and the next renewal, sent one
	// interval after that one, must have time to come back before then.
	LeaseDuration, RenewInterval time.Duration
	// WarmStandby has the reconcilers keep ready, unpublished, the metrics
	// this replica would take over from a lost member (Shard.StandBy), so
	// that it serves them as soon as that member's Lease expires rather
	// than after registering them then.
	WarmStandby bool
}

// Membership keeps this replica's Lease renewed, watches the group's
// Leases and feeds its Shard the live members. It is a manager Runnable
// that runs on every replica.
type Membership struct {
	opts  Options
	shard *Shard
	kick  chan struct{}
	dirty chan struct{}

	// updating serializes view updates.
	updating sync.Mutex
	mu       sync.Mutex
	synced   func() bool
	lease    *coordinationv1.Lease
	// lastRenew is when the last successful renewal was sent.
	lastRenew time.Time
	// lastSelfSeen is when the watch last delivered this replica's own
	// Lease: a watch that stopped delivering would leave the others'
	// Leases looking expired, so the view is frozen until it delivers.
	lastSelfSeen time.Time
	// seen is, per other member's Lease, what this replica saw of it and
	// when its renewal last changed: expiry is judged on this replica's
	// own clock, never by comparing clocks of two machines.
	seen map[string]*observation
	// lastView and lastAcks are the others as last computed from a
	// delivering watch.
	lastView []string
	lastAcks map[string]string
	// delivered is set once the watch has delivered this replica's own
	// Lease: before, the others are unknown, not absent, and a replica
	// that served would take every key.
	delivered bool
}

// expiry is a member counted gone: its Lease, when its lease duration
// since the last renewal seen ran out, and whether it is the first time.
type expiry struct {
	lease *coordinationv1.Lease
	at    time.Time
	first bool
}

type observation struct {
	lease *coordinationv1.Lease
	renew string
	at    time.Time
	// expired is set once the member was counted gone.
	expired bool
}

var _ manager.Runnable = (*Membership)(nil)

// New validates opts and returns the Membership and the Shard it feeds.
func New(opts Options) (*Membership, *Shard, error) {
	if opts.Client == nil {
		return nil, nil, errors.New("sharding: Client is required")
	}
	if opts.Namespace == "" || opts.Identity == "" {
		return nil, nil, errors.New("sharding: Namespace and Identity are required")
	}
	if opts.LeaseDuration%time.Second != 0 || opts.RenewInterval <= 0 || opts.LeaseDuration < MinRenewals*opts.RenewInterval {
		return nil, nil, fmt.Errorf("sharding: the lease duration (%s) must be whole seconds and at least four renew intervals (%s)",
			opts.LeaseDuration, opts.RenewInterval)
	}
	if opts.Group == "" {
		opts.Group = "metrics-operator"
	}
	register()
	m := &Membership{opts: opts, shard: NewShard(opts.Identity), kick: make(chan struct{}, 1), dirty: make(chan struct{}, 1),
		seen: map[string]*observation{}, synced: func() bool { return false }}
	m.shard.applyChanged = m.Kick
	if opts.WarmStandby {
		m.shard.EnableWarmStandby()
	}
	return m, m.shard, nil
}

// Kick makes the next renewal happen now: an acknowledgement should reach
// the others without waiting for the interval.
func (m *Membership) Kick() { signal(m.kick) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// NeedLeaderElection is false: every replica is a member.
func (m *Membership) NeedLeaderElection() bool { return false }

// Start renews the Lease every RenewInterval and recomputes the view on
// every change of a Lease and at every deadline (a member's expiry, this
// replica's fencing) until ctx is done. It leaves the Lease in place:
// Leave deletes it once this replica has stopped pushing.
func (m *Membership) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("sharding")
	ctx = ctrl.LoggerInto(ctx, log)
	log.Info("Joining shard", "lease", m.leaseName(), "namespace", m.opts.Namespace,
		"leaseDuration", m.opts.LeaseDuration.String(), "renewInterval", m.opts.RenewInterval.String())
	factory := informers.NewSharedInformerFactoryWithOptions(m.opts.Client, 0, informers.WithNamespace(m.opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = GroupLabel + "=" + m.opts.Group }))
	inf := factory.Coordination().V1().Leases().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    m.observe,
		UpdateFunc: func(_, obj any) { m.observe(obj) },
		DeleteFunc: m.forget,
	}); err != nil {
		return fmt.Errorf("watching shard Leases: %w", err)
	}
	m.mu.Lock()
	m.synced = inf.HasSynced
	m.mu.Unlock()
	factory.Start(ctx.Done())
	defer factory.Shutdown()

	var wg sync.WaitGroup
	wg.Go(func() { m.renewLoop(ctx) })
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			// Serve nothing more: the manager stops the reconcilers and the
			// coordinator next.
			m.shard.Update(nil, false, nil)
			log.Info("Leaving shard")
			return nil
		case <-m.dirty:
		case <-timer.C:
		}
		next := m.update(ctx)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// renewLoop renews the Lease every RenewInterval, and at once when kicked.
func (m *Membership) renewLoop(ctx context.Context) {
	t := time.NewTicker(m.opts.RenewInterval)
	defer t.Stop()
	for {
		// A renewal that succeeds keeps this replica a member until its
		// fencing deadline counted from when it was sent, however long it
		// took; one cancelled sooner is only sent again to an API server
		// that is slow already (under load, renewals cut off after an
		// interval failed in a row and fenced a replica that was fine). A
		// request that hangs holds up the next renewal until then, when
		// this replica has fenced itself anyway.
		rctx, cancel := context.WithTimeout(ctx, m.opts.LeaseDuration-2*m.opts.RenewInterval)
		sent := time.Now()
		err := m.renew(rctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			ctrl.LoggerFrom(ctx).Error(err, "Renewing the shard Lease failed")
		}
		if err == nil {
			m.mu.Lock()
			m.lastRenew = sent
			m.mu.Unlock()
			signal(m.dirty)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
		}
	}
}

// observe records a Lease the watch delivered.
func (m *Membership) observe(obj any) {
	l, ok := obj.(*coordinationv1.Lease)
	if !ok || l.Spec.HolderIdentity == nil {
		return
	}
	now := time.Now()
	m.mu.Lock()
	if l.Name == m.leaseName() {
		m.lastSelfSeen = now
	} else {
		renew := l.ResourceVersion
		if l.Spec.RenewTime != nil {
			renew = l.Spec.RenewTime.String()
		}
		o := m.seen[l.Name]
		if o == nil || o.renew != renew {
			o = &observation{renew: renew, at: now}
			m.seen[l.Name] = o
		}
		o.lease = l
	}
	m.mu.Unlock()
	signal(m.dirty)
}

// forget drops a Lease that was deleted (released on shutdown, or
// collected).
func (m *Membership) forget(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	l, ok := obj.(*coordinationv1.Lease)
	if !ok {
		return
	}
	m.mu.Lock()
	delete(m.seen, l.Name)
	m.mu.Unlock()
	signal(m.dirty)
}

// update computes the live members and hands them to the shard; it
// returns when to look again. A member is live while this replica has
// seen its renewal change within its lease duration. This replica is
// live while its own last renewal was sent within the lease duration
// minus two renew intervals, so it has stopped serving before anyone can
// count it gone (the others count from when they saw that renewal, which
// was after it was sent).
func (m *Membership) update(ctx context.Context) time.Duration {
	m.updating.Lock()
	defer m.updating.Unlock()
	now := time.Now()
	next := m.opts.RenewInterval / 2
	soon := func(at time.Time) {
		if d := at.Sub(now); d > 0 && d < next {
			next = d
		}
	}
	m.mu.Lock()
	// The watch delivers this replica's renewals every interval; when it
	// has not for two, it may be delivering nothing, and the others'
	// Leases would expire in this view while they are renewed.
	delivering := m.synced() && now.Sub(m.lastSelfSeen) < 2*m.opts.RenewInterval
	m.delivered = m.delivered || delivering
	fenceAt := m.lastRenew.Add(m.opts.LeaseDuration - 2*m.opts.RenewInterval)
	self := m.delivered && !m.lastRenew.IsZero() && now.Before(fenceAt)
	soon(fenceAt)
	var expired []expiry
	if delivering {
		m.lastView, m.lastAcks = nil, map[string]string{}
		for _, o := range m.seen {
			duration := time.Duration(ptr.Deref(o.lease.Spec.LeaseDurationSeconds, 0)) * time.Second
			switch age := now.Sub(o.at); {
			case age < duration:
				id := *o.lease.Spec.HolderIdentity
				m.lastView = append(m.lastView, id)
				m.lastAcks[id] = o.lease.Annotations[AppliedAnnotation]
				soon(o.at.Add(duration))
			default:
				// Deleted at once: a replica starting now would otherwise
				// count it live for a lease duration (it cannot know how
				// long ago it was renewed) and wait that long to settle.
				expired = append(expired, expiry{lease: o.lease, at: o.at.Add(duration), first: !o.expired})
				o.expired = true
			}
		}
	}
	members := m.lastView
	if self {
		members = append([]string{m.opts.Identity}, members...)
	}
	acks := m.lastAcks
	m.mu.Unlock()
	m.shard.Update(members, self, acks)
	for _, e := range expired {
		if e.first {
			// How late after the lease duration since its last renewal was
			// seen this replica counted it gone: the timer's and the
			// scheduler's delay, which a takeover waits for on top of the
			// lease.
			ctrl.LoggerFrom(ctx).Info("Shard member expired", "member", ptr.Deref(e.lease.Spec.HolderIdentity, ""),
				"expiredAt", e.at.Format(time.RFC3339Nano), "late", now.Sub(e.at).String())
		}
		m.collect(ctx, e.lease)
	}
	return max(next, 10*time.Millisecond)
}

// collect deletes the Lease of a member that expired (killed, so it
// could not release it; or cut off, so it has fenced itself and creates
// it again when it can), unless it was renewed meanwhile.
func (m *Membership) collect(ctx context.Context, l *coordinationv1.Lease) {
	err := m.opts.Client.CoordinationV1().Leases(l.Namespace).Delete(ctx, l.Name,
		metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &l.ResourceVersion}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		ctrl.LoggerFrom(ctx).V(1).Info("Collecting an expired shard Lease failed", "lease", l.Name, "error", err.Error())
	}
}

// renew creates or updates this replica's Lease with the current time
// and the view the shard has applied.
func (m *Membership) renew(ctx context.Context) error {
	leases := m.opts.Client.CoordinationV1().Leases(m.opts.Namespace)
	now := metav1.NowMicro()
	applied := m.shard.Applied()
	m.mu.Lock()
	lease := m.lease
	m.mu.Unlock()
	if lease == nil {
		got, err := leases.Get(ctx, m.leaseName(), metav1.GetOptions{})
		switch {
		case err == nil:
			lease = got
		case apierrors.IsNotFound(err):
			lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: m.leaseName(), Namespace: m.opts.Namespace}}
		default:
			return fmt.Errorf("reading the shard Lease: %w", err)
		}
	}
	lease = lease.DeepCopy()
	if lease.Labels == nil {
		lease.Labels = map[string]string{}
	}
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Labels[GroupLabel] = m.opts.Group
	lease.Annotations[AppliedAnnotation] = applied
	lease.Spec.HolderIdentity = ptr.To(m.opts.Identity)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(m.opts.LeaseDuration / time.Second))
	lease.Spec.RenewTime = &now
	if lease.Spec.AcquireTime == nil {
		lease.Spec.AcquireTime = &now
	}
	var err error
	if lease.ResourceVersion == "" {
		lease, err = leases.Create(ctx, lease, metav1.CreateOptions{})
	} else {
		lease, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.lease = nil // read it again next time (conflict, or collected)
		return fmt.Errorf("writing the shard Lease: %w", err)
	}
	m.lease = lease
	return nil
}

// Leave deletes this replica's Lease, so that the others take over its
// metrics at once instead of after the lease duration. Call it only once
// this replica has stopped serving and pushing.
//
// It deletes the Lease by name: the renewal in flight when this replica
// stopped was cancelled and forgot the Lease it had read, and a stopped
// replica that left its Lease to expire kept its metrics unserved for the
// lease duration (seen at 3,000 metrics).
func (m *Membership) Leave(ctx context.Context) error {
	err := m.opts.Client.CoordinationV1().Leases(m.opts.Namespace).Delete(ctx, m.leaseName(), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("releasing the shard Lease: %w", err)
	}
	return nil
}

// leaseName is Group-Identity as a valid object name.
func (m *Membership) leaseName() string {
	name := strings.ToLower(m.opts.Group + "-" + m.opts.Identity)
	name = invalidNameChars.ReplaceAllString(name, "-")
	return strings.Trim(name[:min(len(name), 253)], "-.")
}

var invalidNameChars = regexp.MustCompile(`[^a-z0-9.-]`)
