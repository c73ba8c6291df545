package managed

import (
	"context"
	"slices"
	"sync"

	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Watchers runs the Watchers of remote clusters: one per cluster
// connection, shared by every managed metric that reads the cluster,
// started by its first user and stopped when its last user lets go. It is
// a manager Runnable: Watchers acquired before Start begin with it, and
// all stop with its context. Safe for concurrent use.
type Watchers struct {
	mu      sync.Mutex
	ctx     context.Context // set by Start
	entries map[string]*shared
	// users maps each user to the connection key of the Watcher it holds;
	// a user holds one.
	users       map[string]string
	subscribers []func(key string)
	wg          sync.WaitGroup
}

// shared is one cluster's Watcher and its users.
type shared struct {
	w *Watcher
	// dyn is the client the Watcher reads through: a connection rebuilt
	// with new credentials or a new endpoint brings another one.
	dyn    dynamic.Interface
	users  map[string]bool
	cancel context.CancelFunc
}

var (
	_ manager.Runnable               = (*Watchers)(nil)
	_ manager.LeaderElectionRunnable = (*Watchers)(nil)
)

// NewWatchers returns an empty set.
func NewWatchers() *Watchers {
	return &Watchers{entries: map[string]*shared{}, users: map[string]string{}}
}

// NeedLeaderElection is true: only the leader reads managed resources.
func (s *Watchers) NeedLeaderElection() bool { return true }

// Start starts the Watchers acquired so far, blocks until ctx is done,
// then stops them all and waits for them.
func (s *Watchers) Start(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	for _, e := range s.entries {
		s.startLocked(e)
	}
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	for key, e := range s.entries {
		e.cancel()
		delete(s.entries, key)
	}
	s.users = map[string]string{}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Subscribe registers f to be called with a cluster's connection key
// whenever its managed kinds change, and once its Watcher has synced. f
// must not block.
func (s *Watchers) Subscribe(f func(key string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subscribers = append(s.subscribers, f)
}

// Acquire returns the Watcher of the cluster key, named name in logs and
// self-metrics and reached through dyn, for user, starting it if user is
// the first. A user holds one Watcher: acquiring another releases the one
// it held. A dyn other than the running Watcher's (its connection was
// rebuilt) restarts the Watcher through dyn, for all its users.
func (s *Watchers) Acquire(user, key, name string, dyn dynamic.Interface) *Watcher {
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.users[user]; ok && prev != key {
		s.releaseLocked(user, prev)
	}
	e := s.entries[key]
	if e != nil && (e.dyn != dyn || e.w.cluster != name) {
		e.cancel()
		e.w, e.dyn = s.newWatcher(key, name, dyn), dyn
		e.cancel = func() {}
		s.startLocked(e)
	}
	if e == nil {
		e = &shared{w: s.newWatcher(key, name, dyn), dyn: dyn, users: map[string]bool{}, cancel: func() {}}
		s.entries[key] = e
		s.startLocked(e)
	}
	e.users[user] = true
	s.users[user] = key
	return e.w
}

// Release gives back the Watcher user holds, if any; the last user's
// release stops it.
func (s *Watchers) Release(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if key, ok := s.users[user]; ok {
		s.releaseLocked(user, key)
	}
}

// Active returns the connection keys of the running Watchers, sorted.
func (s *Watchers) Active() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.entries))
	for k := range s.entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (s *Watchers) releaseLocked(user, key string) {
	delete(s.users, user)
	e := s.entries[key]
	if e == nil {
		return
	}
	delete(e.users, user)
	if len(e.users) == 0 {
		e.cancel()
		delete(s.entries, key)
	}
}

// newWatcher returns a remote cluster's Watcher, which tells the
// subscribers of the set about its changes.
func (s *Watchers) newWatcher(key, name string, dyn dynamic.Interface) *Watcher {
	w := NewWatcher(name, dyn)
	w.remote = true
	w.onChange = func() {
		s.mu.Lock()
		subs := slices.Clone(s.subscribers)
		s.mu.Unlock()
		for _, f := range subs {
			f(key)
		}
	}
	return w
}

// startLocked runs e's Watcher once the set has started, and not after
// it stopped.
func (s *Watchers) startLocked(e *shared) {
	if s.ctx == nil || s.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	e.cancel = cancel
	w := e.w
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = w.Start(ctx) // it fails only on an informer started before; this one is new
	}()
}
