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
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
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

// Options configure a Membership.
type Options struct {
	// Client writes this replica's Lease; Reader lists the members'
	// Leases (uncached: a cache would hold every Lease of the cluster).
	Client client.Client
	Reader client.Reader
	// Namespace holds the Leases; Group names the set of replicas that
	// share metrics (default "metrics-operator").
	Namespace, Group string
	// Identity is this replica's member name (a pod name); the Lease is
	// named Group-Identity, made a valid object name.
	Identity string
	// LeaseDuration is how long a member that stopped renewing counts as
	// live; RenewInterval is how often members renew and look at the
	// others. LeaseDuration must be at least three RenewIntervals.
	LeaseDuration, RenewInterval time.Duration
}

// Membership keeps this replica's Lease renewed and feeds its Shard the
// live members. It is a manager Runnable that runs on every replica.
type Membership struct {
	opts  Options
	shard *Shard
	kick  chan struct{}

	// updating serializes view updates (renewals and deadline checks).
	updating sync.Mutex
	mu       sync.Mutex
	lease    *coordinationv1.Lease
	// lastRenew is when the last successful renewal was sent.
	lastRenew time.Time
	// seen is, per other member's Lease, its last renewTime and when this
	// replica saw it change: expiry is judged on this replica's own clock,
	// never by comparing clocks of two machines.
	seen map[string]observation
	// lastAcks are the others' acknowledgements of the last listing.
	lastAcks map[string]string
}

type observation struct {
	renew string
	at    time.Time
	// duration is the member's own lease duration.
	duration time.Duration
}

var _ manager.Runnable = (*Membership)(nil)

// New validates opts and returns the Membership and the Shard it feeds.
func New(opts Options) (*Membership, *Shard, error) {
	if opts.Client == nil || opts.Reader == nil {
		return nil, nil, errors.New("sharding: Client and Reader are required")
	}
	if opts.Namespace == "" || opts.Identity == "" {
		return nil, nil, errors.New("sharding: Namespace and Identity are required")
	}
	// Leases count whole seconds: the others must expire this replica
	// after the duration it fences itself by.
	opts.LeaseDuration = opts.LeaseDuration.Truncate(time.Second)
	if opts.RenewInterval <= 0 || opts.LeaseDuration < 3*opts.RenewInterval {
		return nil, nil, fmt.Errorf("sharding: the lease duration (%s, whole seconds) must be at least three renew intervals (%s)",
			opts.LeaseDuration, opts.RenewInterval)
	}
	if opts.Group == "" {
		opts.Group = "metrics-operator"
	}
	register()
	m := &Membership{opts: opts, shard: NewShard(opts.Identity), kick: make(chan struct{}, 1), seen: map[string]observation{}}
	m.shard.applyChanged = m.Kick
	return m, m.shard, nil
}

// Kick makes the next renewal happen now: an acknowledgement should reach
// the others without waiting for the interval.
func (m *Membership) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// NeedLeaderElection is false: every replica is a member.
func (m *Membership) NeedLeaderElection() bool { return false }

// Start renews the Lease and refreshes the view every RenewInterval until
// ctx is done. It leaves the Lease in place: Leave deletes it once this
// replica has stopped pushing. Between renewals it checks the fencing
// deadline every half interval, whether or not the API server answers.
func (m *Membership) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("sharding")
	ctx = ctrl.LoggerInto(ctx, log)
	log.Info("Joining shard", "lease", m.leaseName(), "namespace", m.opts.Namespace,
		"leaseDuration", m.opts.LeaseDuration.String(), "renewInterval", m.opts.RenewInterval.String())
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(m.opts.RenewInterval / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.update(ctx, nil, false)
			}
		}
	})
	t := time.NewTicker(m.opts.RenewInterval)
	defer t.Stop()
	for {
		m.tick(ctx)
		select {
		case <-ctx.Done():
			wg.Wait()
			// Serve nothing more: the manager stops the reconcilers and the
			// coordinator next.
			m.shard.Update(nil, false, nil)
			log.Info("Leaving shard")
			return nil
		case <-t.C:
		case <-m.kick:
		}
	}
}

// tick renews the Lease, then reads the members' Leases and updates the
// shard.
func (m *Membership) tick(ctx context.Context) {
	log := ctrl.LoggerFrom(ctx)
	// A request that hangs must not hold up the next renewal.
	ctx, cancel := context.WithTimeout(ctx, m.opts.RenewInterval)
	defer cancel()
	sent := time.Now()
	if err := m.renew(ctx); err != nil {
		log.Error(err, "Renewing the shard Lease failed")
	} else {
		m.mu.Lock()
		m.lastRenew = sent
		m.mu.Unlock()
	}
	list := &coordinationv1.LeaseList{}
	if err := m.opts.Reader.List(ctx, list, client.InNamespace(m.opts.Namespace),
		client.MatchingLabels{GroupLabel: m.opts.Group}); err != nil {
		log.Error(err, "Listing the shard Leases failed")
		// Without a fresh view, only the fencing deadline can change.
		m.update(ctx, nil, false)
		return
	}
	m.update(ctx, list.Items, true)
}

// update computes the live members from leases (when listed) and hands
// them to the shard. A member is live while this replica has seen its
// renewTime change within its lease duration; this replica is live while
// its own last renewal was sent within the lease duration minus two
// renew intervals, so it has stopped serving before anyone can count it
// gone (the deadline is checked every half interval, and the drops take
// the rest).
func (m *Membership) update(ctx context.Context, leases []coordinationv1.Lease, listed bool) {
	m.updating.Lock()
	defer m.updating.Unlock()
	now := time.Now()
	m.mu.Lock()
	self := !m.lastRenew.IsZero() && now.Sub(m.lastRenew) < m.opts.LeaseDuration-2*m.opts.RenewInterval
	if listed {
		present := map[string]bool{}
		for i := range leases {
			l := &leases[i]
			if l.Name == m.leaseName() || l.Spec.HolderIdentity == nil {
				continue
			}
			present[l.Name] = true
			renew := ""
			if l.Spec.RenewTime != nil {
				renew = l.Spec.RenewTime.String() + "/" + l.ResourceVersion
			}
			o, ok := m.seen[l.Name]
			if !ok || o.renew != renew {
				o = observation{renew: renew, at: now}
			}
			o.duration = time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 0)) * time.Second
			m.seen[l.Name] = o
		}
		for name := range m.seen {
			if !present[name] {
				delete(m.seen, name) // released on shutdown, or collected
			}
		}
	}
	members := []string{}
	if self {
		members = append(members, m.opts.Identity)
	}
	acks := map[string]string{}
	var expired []coordinationv1.Lease
	for i := range leases {
		l := &leases[i]
		o, ok := m.seen[l.Name]
		if !ok {
			continue
		}
		age := now.Sub(o.at)
		if age < o.duration {
			members = append(members, *l.Spec.HolderIdentity)
			acks[*l.Spec.HolderIdentity] = l.Annotations[AppliedAnnotation]
		} else if age > 2*o.duration {
			expired = append(expired, *l)
		}
	}
	if !listed {
		// Keep the last view of the others; only self may drop out.
		view, _, _ := m.shard.Status()
		members = members[:0]
		for _, v := range view {
			if v != m.opts.Identity || self {
				members = append(members, v)
			}
		}
		acks = m.lastAcks
	} else {
		m.lastAcks = acks
	}
	m.mu.Unlock()
	m.shard.Update(members, self, acks)
	for i := range expired {
		m.collect(ctx, &expired[i])
	}
}

// collect deletes the Lease of a member gone long ago (killed, so it
// could not release it), unless it was renewed meanwhile.
func (m *Membership) collect(ctx context.Context, l *coordinationv1.Lease) {
	err := m.opts.Client.Delete(ctx, l, client.Preconditions{ResourceVersion: &l.ResourceVersion})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		ctrl.LoggerFrom(ctx).V(1).Info("Collecting an expired shard Lease failed", "lease", l.Name, "error", err.Error())
	}
}

// renew creates or updates this replica's Lease with the current time
// and the view the shard has applied.
func (m *Membership) renew(ctx context.Context) error {
	now := metav1.NowMicro()
	applied := m.shard.Applied()
	m.mu.Lock()
	lease := m.lease
	m.mu.Unlock()
	if lease == nil {
		lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: m.leaseName(), Namespace: m.opts.Namespace}}
		if err := m.opts.Client.Get(ctx, client.ObjectKeyFromObject(lease), lease); err != nil {
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("reading the shard Lease: %w", err)
			}
			lease.ResourceVersion = ""
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
		err = m.opts.Client.Create(ctx, lease)
	} else {
		err = m.opts.Client.Update(ctx, lease)
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
func (m *Membership) Leave(ctx context.Context) error {
	m.mu.Lock()
	lease := m.lease
	m.mu.Unlock()
	if lease == nil {
		return nil
	}
	if err := m.opts.Client.Delete(ctx, lease); err != nil && !apierrors.IsNotFound(err) {
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
