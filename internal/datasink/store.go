package datasink

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// Store holds the latest resolution of every DataSink, written by the
// DataSink controller and read by exporters, so an export never reads
// Secrets itself and an exporter is rebuilt exactly when the DataSink or
// one of its Secrets changed (its Target's Fingerprint differs).
type Store struct {
	mu      sync.RWMutex
	entries map[types.NamespacedName]entry
}

type entry struct {
	target *Target
	err    error
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{entries: map[types.NamespacedName]entry{}}
}

// Set records the resolution of a DataSink: a Target, or the error that
// kept it from resolving.
func (s *Store) Set(key types.NamespacedName, t *Target, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[key] = entry{target: t, err: err}
}

// Delete forgets a DataSink that no longer exists.
func (s *Store) Delete(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, key)
}

// Get returns the DataSink's Target or its resolution error; found is
// false when the DataSink does not exist or was not resolved yet.
func (s *Store) Get(key types.NamespacedName) (t *Target, err error, found bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.entries[key]
	return e.target, e.err, ok
}
