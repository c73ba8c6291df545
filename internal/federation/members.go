package federation

import (
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// Cluster is one cluster an access discovered.
type Cluster struct {
	// Key is the cluster's connection key in internal/clusters.
	Key string
	// Name is the "cluster" dimension of what is read from it.
	Name string
}

// Members holds the current clusters of every FederatedClusterAccess.
// Safe for concurrent use.
type Members struct {
	mu          sync.Mutex
	clusters    map[types.NamespacedName][]Cluster
	subscribers []func(types.NamespacedName)
}

// NewMembers returns an empty Members.
func NewMembers() *Members {
	return &Members{clusters: map[types.NamespacedName][]Cluster{}}
}

// Clusters returns the clusters access discovered, sorted by key; nil if
// it discovered none or does not exist.
func (m *Members) Clusters(access types.NamespacedName) []Cluster {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.clusters[access])
}

// Subscribe registers f to be called with an access whose clusters
// changed: one appeared, went, or was renamed. f must not block. A
// change of a cluster's connection itself (new credentials, failure) is
// told by clusters.Set.Subscribe with the cluster's key.
func (m *Members) Subscribe(f func(access types.NamespacedName)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subscribers = append(m.subscribers, f)
}

// Set records the clusters of access (nil or empty: none) and tells the
// subscribers if they changed.
func (m *Members) Set(access types.NamespacedName, cs []Cluster) {
	cs = slices.Clone(cs)
	slices.SortFunc(cs, func(a, b Cluster) int {
		if a.Key < b.Key {
			return -1
		}
		if a.Key > b.Key {
			return 1
		}
		return 0
	})
	m.mu.Lock()
	if slices.Equal(m.clusters[access], cs) {
		m.mu.Unlock()
		return
	}
	if len(cs) == 0 {
		delete(m.clusters, access)
	} else {
		m.clusters[access] = cs
	}
	subs := slices.Clone(m.subscribers)
	m.mu.Unlock()
	for _, f := range subs {
		f(access)
	}
}
