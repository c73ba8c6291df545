package evaluation

import "math/bits"

// idTable maps ObjectIDs to 4-byte values: an open-addressing hash table
// with linear probing over one slice of 8-byte slots. A lookup reads one
// slot, mostly one cache line; a Go map reads its header, its directory
// or table and a group first. At a thousand metrics on a watch an event
// evaluates states that are cold in cache, and those dependent reads
// were the largest part of an evaluation.
type idTable struct {
	// slots hold (id+1)<<32 | value; 0 is empty. Their number is a power
	// of two, at most 13/16 used: dense IDs spread well under Fibonacci
	// hashing, and a lookup still mostly stays in one cache line.
	slots []uint64
	n     int
}

// home returns the slot id hashes to in a table of 1<<(64-shift) slots
// (Fibonacci hashing: IDs are dense, neighbours must spread).
func home(id ObjectID, shift uint) int {
	return int((uint64(id) * 0x9E3779B97F4A7C15) >> shift)
}

func (t *idTable) shift() uint { return uint(64 - bits.TrailingZeros(uint(len(t.slots)))) }

// find returns the slot holding id, or -1.
func (t *idTable) find(id ObjectID) int {
	if t.n == 0 {
		return -1
	}
	mask, want := len(t.slots)-1, uint64(id)+1
	for i := home(id, t.shift()); ; i = (i + 1) & mask {
		switch s := t.slots[i]; s >> 32 {
		case want:
			return i
		case 0:
			return -1
		}
	}
}

func (t *idTable) get(id ObjectID) (uint32, bool) {
	if i := t.find(id); i >= 0 {
		return uint32(t.slots[i]), true
	}
	return 0, false
}

func (t *idTable) set(id ObjectID, v uint32) {
	if (t.n+1)*16 > len(t.slots)*13 {
		t.grow()
	}
	mask, want := len(t.slots)-1, uint64(id)+1
	i := home(id, t.shift())
	for ; t.slots[i] != 0; i = (i + 1) & mask {
		if t.slots[i]>>32 == want {
			t.slots[i] = want<<32 | uint64(v)
			return
		}
	}
	t.slots[i] = want<<32 | uint64(v)
	t.n++
}

func (t *idTable) grow() {
	old := t.slots
	t.slots, t.n = make([]uint64, max(8, 2*len(old))), 0
	for _, s := range old {
		if s != 0 {
			t.set(ObjectID(s>>32-1), uint32(s))
		}
	}
}

// delete removes id, moving back the slots after it that probing would
// no longer reach (no tombstones: a table with churn stays as fast).
func (t *idTable) delete(id ObjectID) {
	i := t.find(id)
	if i < 0 {
		return
	}
	mask, shift := len(t.slots)-1, t.shift()
	for j := i; ; {
		t.slots[i] = 0
		for {
			j = (j + 1) & mask
			s := t.slots[j]
			if s == 0 {
				t.n--
				return
			}
			// s stays unless its home is cyclically outside (i, j].
			k := home(ObjectID(s>>32-1), shift)
			if (i <= j && i < k && k <= j) || (i > j && (i < k || k <= j)) {
				continue
			}
			t.slots[i] = s
			i = j
			break
		}
	}
}

func (t *idTable) len() int { return t.n }

// ids returns the IDs held, for walks that delete.
func (t *idTable) ids() []ObjectID {
	out := make([]ObjectID, 0, t.n)
	for _, s := range t.slots {
		if s != 0 {
			out = append(out, ObjectID(s>>32-1))
		}
	}
	return out
}
