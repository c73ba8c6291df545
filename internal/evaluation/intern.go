package evaluation

import (
	"sync"

	"k8s.io/apimachinery/pkg/labels"
)

// Compiled specs keep their strings (label keys and values, path keys)
// through one table: a thousand metrics reading metadata.labels.team
// share one copy of "metadata", "labels" and "team", which the event path
// then finds in cache instead of fetching a copy per metric. The table is
// bounded (a tenant changing specs in a loop must not grow it without
// end): past maxInterned strings, or for longer ones, a spec keeps its
// own copies, which only costs the sharing.
var (
	internMu sync.Mutex
	interned = map[string]string{}
)

const (
	maxInterned  = 1 << 14
	maxInternLen = 256
)

// intern returns the table's copy of s, adding s if there is room.
func intern(s string) string {
	if len(s) > maxInternLen {
		return s
	}
	internMu.Lock()
	defer internMu.Unlock()
	if c, ok := interned[s]; ok {
		return c
	}
	if len(interned) < maxInterned {
		interned[s] = s
	}
	return s
}

// internSelector returns sel rebuilt from interned keys and values; sel
// itself if it cannot be rebuilt. It selects the same objects and prints
// the same.
func internSelector(sel labels.Selector) labels.Selector {
	reqs, ok := sel.Requirements()
	if !ok {
		return sel
	}
	out := make([]labels.Requirement, 0, len(reqs))
	for _, r := range reqs {
		vals := r.ValuesUnsorted()
		for i := range vals {
			vals[i] = intern(vals[i])
		}
		nr, err := labels.NewRequirement(intern(r.Key()), r.Operator(), vals)
		if err != nil {
			return sel
		}
		out = append(out, *nr)
	}
	rebuilt := labels.NewSelector().Add(out...)
	if rebuilt.String() != sel.String() {
		return sel
	}
	return rebuilt
}
