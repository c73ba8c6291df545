package registry

import (
	"sync"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/SAP/metrics-operator/internal/evaluation"
)

// Index groups the subscriptions of one watch by what they compute and
// indexes the groups by what rules an object in or out cheaply, so an
// event is evaluated only for the groups that may want its object.
//
// A group is the subscriptions whose evaluators have the same ShareKey:
// they select the same objects and give them the same series, so their
// aggregates may share one state. Each group is indexed by one term of its
// selectors, its anchor, chosen in this order: a label equality or set
// membership (team=a, team in (a,b): only objects with one of those
// values), a label that must exist (team), the metric's namespace, a label
// inequality or exclusion (team!=a, team notin (a,b), !team: every object
// but those). A group with none of these (no label selector and all
// namespaces, or only field selectors or numeric label comparisons) is a
// candidate for every object. The anchor only narrows: the evaluator
// still decides, so correctness never depends on the index.
//
// An Index is immutable; the registry builds one per change of the
// watch's subscriptions, when it is first asked for.
type Index struct {
	// Groups are the groups, in no particular order; candidates are
	// positions in it.
	Groups []Group

	// byID finds a group by ID: posByID (position + 1 by ID - idBase)
	// while the IDs are dense enough, as they are unless specs changed
	// very often, else the map.
	byID       map[uint32]int
	posByID    []int32
	idBase     uint32
	byShareKey map[string]int
	// labels are the label keys some anchor reads, each with its groups.
	labels []labelPosting
	byNS   map[string][]int
	// negative lists the groups anchored on an exclusion: candidates for
	// every object that no exclusion of theirs rules out.
	negative []int
	always   []int
}

// Group is the subscriptions of one watch with the same compiled spec.
type Group struct {
	// ID names the group for as long as the watch has subscriptions of
	// its spec; IDs are never reused on a watch.
	ID uint32
	// ShareKey is the evaluators' evaluation.Evaluator.ShareKey.
	ShareKey string
	// Pos is the group's position in its Index's Groups: what a caller
	// keeps per group of one Index may be a slice indexed by it.
	Pos int
	// Decided is set when the index alone decides the group's selectors:
	// its only terms are what it is indexed by (one label equality, set
	// membership or existence; only exclusions; a namespace; nothing), so
	// every object Candidates finds for it matches them, and evaluating
	// need not ask again. Not for groups a caller adds itself.
	Decided bool
	// Subs are the group's subscriptions.
	Subs []*Subscription
}

type labelPosting struct {
	key string
	// in: value → groups that need the label to have it.
	in map[string][]int
	// exists: groups that need the label.
	exists []int
	// notIn: value → negative groups that the value rules out.
	notIn map[string][]int
	// absentOut: negative groups that the label's presence rules out.
	absentOut []int
}

// Scratch is what finding candidates needs per call, kept by the caller
// between events so that finding them allocates nothing. The zero value
// is ready; it serves one goroutine at a time.
type Scratch struct {
	epoch uint32
	seen  []uint32 // per group: epoch it was found in
	out   []uint32 // per group: epoch it was ruled out in
}

// Begin starts a new set of candidates (one event) for x.
func (s *Scratch) Begin(x *Index) {
	n := len(x.Groups)
	if len(s.seen) < n {
		s.seen = make([]uint32, n)
		s.out = make([]uint32, n)
		s.epoch = 0
	}
	s.epoch++
	if s.epoch == 0 { // wrapped: old marks could collide
		clear(s.seen)
		clear(s.out)
		s.epoch = 1
	}
}

// Add adds group g to the set unless it is in it; it reports whether it
// was added.
func (s *Scratch) Add(g int) bool {
	if s.seen[g] == s.epoch {
		return false
	}
	s.seen[g] = s.epoch
	return true
}

// Candidates appends to dst the groups that may want an object in
// namespace with labels (metadata.labels as unstructured content), each
// once per Scratch.Begin, and returns dst.
func (x *Index) Candidates(dst []int, s *Scratch, namespace string, labels map[string]any) []int {
	add := func(gs []int) {
		for _, g := range gs {
			if s.Add(g) {
				dst = append(dst, g)
			}
		}
	}
	add(x.always)
	if gs, ok := x.byNS[namespace]; ok {
		add(gs)
	}
	for i := range x.labels {
		p := &x.labels[i]
		v, ok := evaluation.ObjectLabel(labels, p.key)
		if !ok {
			continue
		}
		add(p.exists)
		if gs, ok := p.in[v]; ok {
			add(gs)
		}
		for _, g := range p.absentOut {
			s.out[g] = s.epoch
		}
		for _, g := range p.notIn[v] {
			s.out[g] = s.epoch
		}
	}
	for _, g := range x.negative {
		if s.out[g] != s.epoch && s.Add(g) {
			dst = append(dst, g)
		}
	}
	return dst
}

// Position returns the position of the group with id, if it still
// exists.
func (x *Index) Position(id uint32) (int, bool) {
	if x.byID != nil {
		g, ok := x.byID[id]
		return g, ok
	}
	if i := id - x.idBase; id >= x.idBase && int(i) < len(x.posByID) && x.posByID[i] > 0 {
		return int(x.posByID[i]) - 1, true
	}
	return 0, false
}

// indexIDs builds the lookup of groups by ID: a slice when the IDs span
// at most a few times as many values as there are groups.
func (x *Index) indexIDs() {
	if len(x.Groups) == 0 {
		return
	}
	lo, hi := x.Groups[0].ID, x.Groups[0].ID
	for _, g := range x.Groups {
		lo, hi = min(lo, g.ID), max(hi, g.ID)
	}
	if span := int(hi-lo) + 1; span <= 4*len(x.Groups)+64 {
		x.idBase, x.posByID = lo, make([]int32, span)
		for g := range x.Groups {
			x.posByID[x.Groups[g].ID-lo] = int32(g) + 1
		}
		return
	}
	x.byID = make(map[uint32]int, len(x.Groups))
	for g := range x.Groups {
		x.byID[x.Groups[g].ID] = g
	}
}

// GroupOf returns the position of the group of the evaluator's share key.
func (x *Index) GroupOf(shareKey string) (int, bool) {
	g, ok := x.byShareKey[shareKey]
	return g, ok
}

// groupIDs assigns the stable group IDs of one watch.
type groupIDs struct {
	mu   sync.Mutex
	ids  map[string]uint32
	next uint32
}

// buildIndex groups and indexes subs; ids keeps the groups' IDs across
// rebuilds and forgets those of groups that are gone.
func buildIndex(subs []*Subscription, ids *groupIDs) *Index {
	x := &Index{byShareKey: map[string]int{}, byNS: map[string][]int{}}
	for _, s := range subs {
		key := "\x00" + s.ID // a subscription without an aggregate is a group of its own
		if s.Aggregate != nil {
			key = s.Aggregate.ShareKey()
		}
		g, ok := x.byShareKey[key]
		if !ok {
			g = len(x.Groups)
			x.byShareKey[key] = g
			x.Groups = append(x.Groups, Group{ShareKey: key, Pos: g})
		}
		x.Groups[g].Subs = append(x.Groups[g].Subs, s)
	}
	ids.mu.Lock()
	for k := range ids.ids {
		if _, ok := x.byShareKey[k]; !ok {
			delete(ids.ids, k)
		}
	}
	for g := range x.Groups {
		grp := &x.Groups[g]
		id, ok := ids.ids[grp.ShareKey]
		if !ok {
			ids.next++
			id = ids.next
			ids.ids[grp.ShareKey] = id
		}
		grp.ID = id
	}
	ids.mu.Unlock()
	x.indexIDs()

	postings := map[string]*labelPosting{}
	posting := func(key string) *labelPosting {
		p := postings[key]
		if p == nil {
			p = &labelPosting{key: key, in: map[string][]int{}, notIn: map[string][]int{}}
			postings[key] = p
		}
		return p
	}
	for g := range x.Groups {
		x.anchor(g, posting)
	}
	for _, p := range postings {
		x.labels = append(x.labels, *p)
	}
	return x
}

// anchor indexes group g by its most selective term.
func (x *Index) anchor(g int, posting func(string) *labelPosting) {
	s := x.Groups[g].Subs[0]
	if s.Aggregate == nil {
		x.always = append(x.always, g)
		return
	}
	e := s.Aggregate.Evaluator()
	reqs := e.LabelRequirements()
	x.Groups[g].Decided = decided(e.Namespace(), e.HasFieldSelector(), reqs)
	best, bestValues := -1, 0
	exists := -1
	for i, r := range reqs {
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			if n := r.Values().Len(); best < 0 || n < bestValues {
				best, bestValues = i, n
			}
		case selection.Exists:
			if exists < 0 {
				exists = i
			}
		}
	}
	switch {
	case best >= 0:
		p := posting(reqs[best].Key())
		for v := range reqs[best].Values() {
			p.in[v] = append(p.in[v], g)
		}
		return
	case exists >= 0:
		p := posting(reqs[exists].Key())
		p.exists = append(p.exists, g)
		return
	case e.Namespace() != "":
		x.byNS[e.Namespace()] = append(x.byNS[e.Namespace()], g)
		return
	}
	negative := false
	for _, r := range reqs {
		switch r.Operator() {
		case selection.NotEquals, selection.NotIn:
			p := posting(r.Key())
			for v := range r.Values() {
				p.notIn[v] = append(p.notIn[v], g)
			}
			negative = true
		case selection.DoesNotExist:
			p := posting(r.Key())
			p.absentOut = append(p.absentOut, g)
			negative = true
		}
	}
	if negative {
		x.negative = append(x.negative, g)
		return
	}
	x.always = append(x.always, g)
}

// decided reports whether anchor's choice for a spec of namespace, field
// selectors and label requirements reqs is all the spec selects by: the
// candidates found for it then all match.
func decided(namespace string, fields bool, reqs labels.Requirements) bool {
	if fields {
		return false
	}
	switch len(reqs) {
	case 0:
		return true // anchored on its namespace, or on nothing
	case 1:
		switch reqs[0].Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In, selection.Exists:
			return namespace == ""
		}
	}
	if namespace != "" {
		return false
	}
	for _, r := range reqs {
		switch r.Operator() {
		case selection.NotEquals, selection.NotIn, selection.DoesNotExist:
		default:
			return false
		}
	}
	return true
}

// Has reports whether group g is in the set.
func (s *Scratch) Has(g int) bool { return g < len(s.seen) && s.seen[g] == s.epoch }
