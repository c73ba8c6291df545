package evaluation

import "sync"

// ObjectID is an object's key (UID) interned by a Keys table: the states
// of a watch key their per-object entries by it, four bytes instead of a
// string header, and hash it without reading the UID.
type ObjectID uint32

// Keys interns object keys as small dense IDs. The events handler keeps
// one per watch, which every state (Shared) evaluated on that watch uses,
// so a UID is stored once per watch however many metrics hold its
// object. An ID lives while something holds a reference to it (each
// entry of a state holds one; Intern takes one) and is reused after the
// last is released, so IDs stay dense: a table indexed by ID is sized by
// the objects held, not by those ever seen. It is safe for concurrent
// use.
type Keys struct {
	mu   sync.Mutex
	ids  map[string]ObjectID
	uids []string // by ID; "" while free
	refs []int32  // by ID
	free []ObjectID
}

// NewKeys returns an empty table.
func NewKeys() *Keys { return &Keys{ids: map[string]ObjectID{}} }

// Intern returns the ID of uid, taking a reference to it.
func (k *Keys) Intern(uid string) ObjectID {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.internLocked(uid)
}

func (k *Keys) internLocked(uid string) ObjectID {
	if id, ok := k.ids[uid]; ok {
		k.refs[id]++
		return id
	}
	var id ObjectID
	if n := len(k.free); n > 0 {
		id = k.free[n-1]
		k.free = k.free[:n-1]
	} else {
		id = ObjectID(len(k.uids))
		k.uids = append(k.uids, "")
		k.refs = append(k.refs, 0)
	}
	k.ids[uid], k.uids[id], k.refs[id] = id, uid, 1
	return id
}

// Lookup returns the ID of uid if it is interned, taking no reference.
func (k *Keys) Lookup(uid string) (ObjectID, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id, ok := k.ids[uid]
	return id, ok
}

// Ref takes another reference to id, which must be live.
func (k *Keys) Ref(id ObjectID) {
	k.mu.Lock()
	k.refs[id]++
	k.mu.Unlock()
}

// Release gives back one reference to id; the last frees it.
func (k *Keys) Release(id ObjectID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.releaseLocked(id)
}

func (k *Keys) releaseLocked(id ObjectID) {
	if k.refs[id]--; k.refs[id] > 0 {
		return
	}
	delete(k.ids, k.uids[id])
	k.uids[id] = ""
	k.free = append(k.free, id)
}

// UID returns the key id interns; id must be live.
func (k *Keys) UID(id ObjectID) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.uids[id]
}

// Len returns the number of live IDs.
func (k *Keys) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.ids)
}

// Cap returns one more than the largest ID handed out so far: a table
// indexed by ID needs that many slots.
func (k *Keys) Cap() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.uids)
}

// idSet is a set of IDs, a bit per ID up to the largest added: a relist
// marks what it saw in it instead of in a map of strings.
type idSet []uint64

func (s *idSet) add(id ObjectID) {
	w := int(id / 64)
	if w >= len(*s) {
		*s = append(*s, make([]uint64, w+1-len(*s))...)
	}
	(*s)[w] |= 1 << (id % 64)
}

func (s idSet) has(id ObjectID) bool {
	w := int(id / 64)
	return w < len(s) && s[w]&(1<<(id%64)) != 0
}
