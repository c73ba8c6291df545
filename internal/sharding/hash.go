package sharding

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"strings"
)

// Owner returns the member that owns key among members by rendezvous
// (highest random weight) hashing: every member scores the key, the
// highest score wins, ties go to the smaller member name. It returns ""
// when members is empty. A member joining takes only the keys it now
// scores highest on, and a member leaving hands only its own keys to the
// runners-up, so a change of N members moves about 1/N of the keys.
func Owner(key string, members []string) string {
	owner, _ := ranked(key, members)
	return owner
}

// RunnerUp returns the member that would own key among members if its
// owner were gone: the second in the rendezvous order, "" with fewer than
// two members.
func RunnerUp(key string, members []string) string {
	_, second := ranked(key, members)
	return second
}

// ranked returns the first and second member in key's rendezvous order.
func ranked(key string, members []string) (first, second string) {
	var firstScore, secondScore uint64
	before := func(m string, s uint64, than string, thanScore uint64) bool {
		return than == "" || s > thanScore || s == thanScore && m < than
	}
	for _, m := range members {
		s := score(m, key)
		switch {
		case m == first || m == second:
			// A member named twice counts once.
		case before(m, s, first, firstScore):
			first, firstScore, second, secondScore = m, s, first, firstScore
		case before(m, s, second, secondScore):
			second, secondScore = m, s
		}
	}
	return first, second
}

// score is a well-mixed 64-bit hash of member and key. FNV alone leaves
// similar inputs (metric-1, metric-2) with correlated high bits; the
// finalizer of SplitMix64 spreads every input bit over the result.
func score(member, key string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(member))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// viewHash names a set of members (sorted): members compare it to know
// whether they see the same set.
func viewHash(members []string) string {
	sum := sha256.Sum256([]byte(strings.Join(members, "\n")))
	return hex.EncodeToString(sum[:8])
}
