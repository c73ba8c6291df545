package evaluation

// entryStore is a state's per-object store: what each matching object
// contributes, by ObjectID. There are objects × states of these entries,
// the bulk of the operator's memory at a thousand metrics, so they are
// kept small: a spec that counts objects (no valueFrom) keeps only the
// slot of the object's series, 4 bytes beside the 4-byte ID in an
// idTable, since every object's value is 1; a spec with valueFrom keeps
// the series and value in a map. Hash tables, not slices indexed by ID: a
// metric selecting a few of a watch's objects costs what it holds, not
// what the watch holds.
type entryStore struct {
	counts  bool
	counted idTable            // count specs: the series' slot
	valued  map[ObjectID]entry // valueFrom specs
	// slots are the series with objects, by slot, nil when free; a
	// counted entry names its series by slot.
	slots []*series
	free  []uint32
}

// entry is all that is kept per object and spec of valueFrom.
type entry struct {
	s     *series // nil when the object has no value (missing or an error)
	value int64
}

func newEntryStore(counts bool) entryStore {
	if counts {
		return entryStore{counts: true}
	}
	return entryStore{valued: map[ObjectID]entry{}}
}

// empty returns an empty store of the same kind that keeps the series'
// slots: for forgetting every object while the series stay.
func (m *entryStore) empty() entryStore {
	e := newEntryStore(m.counts)
	e.slots, e.free = m.slots, m.free
	return e
}

// get returns the object's entry.
func (m *entryStore) get(id ObjectID) (entry, bool) {
	if !m.counts {
		en, ok := m.valued[id]
		return en, ok
	}
	slot, ok := m.counted.get(id)
	if !ok {
		return entry{}, false
	}
	return entry{s: m.slots[slot], value: 1}, true
}

// set stores the object's entry; a counted entry always has a series.
func (m *entryStore) set(id ObjectID, en entry) {
	if !m.counts {
		m.valued[id] = en
		return
	}
	m.counted.set(id, en.s.slot)
}

func (m *entryStore) delete(id ObjectID) {
	if !m.counts {
		delete(m.valued, id)
		return
	}
	m.counted.delete(id)
}

func (m *entryStore) len() int {
	if !m.counts {
		return len(m.valued)
	}
	return m.counted.len()
}

// each calls f for every object's ID; f may delete that object.
func (m *entryStore) each(f func(ObjectID)) {
	if !m.counts {
		for id := range m.valued {
			f(id)
		}
		return
	}
	for _, id := range m.counted.ids() {
		f(id)
	}
}

// addSeries gives a series that gets its first object a slot.
func (m *entryStore) addSeries(s *series) {
	if n := len(m.free); n > 0 {
		s.slot = m.free[n-1]
		m.free = m.free[:n-1]
		m.slots[s.slot] = s
		return
	}
	s.slot = uint32(len(m.slots))
	m.slots = append(m.slots, s)
}

// dropSeries frees the slot of a series that lost its last object.
func (m *entryStore) dropSeries(s *series) {
	m.slots[s.slot] = nil
	m.free = append(m.free, s.slot)
}
