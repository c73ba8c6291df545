package prometheus

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Family is what one metric exports: a gauge family and its samples.
type Family struct {
	// Name is spec.name as written; it is sanitised here.
	Name string
	// Help is the HELP text.
	Help string
	// LabelNames are the dimension names, base dimensions first; they are
	// sanitised here. Every sample has one value per label, "" for a
	// dimension absent from that series.
	LabelNames []string
	// Version changes whenever Samples would return other samples. The
	// family is rendered again on the first scrape that sees a new
	// version, so a burst of changes costs one rendering and a scrape of
	// unchanged families only copies bytes. Nil: render on every scrape.
	Version func() uint64
	// Samples returns the current series. It is called on the first
	// scrape after a change, so a producer never renders samples for a
	// scrape nobody makes.
	Samples func() []Sample
}

// Sample is one series.
type Sample struct {
	LabelValues []string
	Value       float64
}

// Collector holds the family of every metric name and renders it on
// scrape. Which metric a name belongs to is the caller's decision (the
// coordinator's): the collector serves what it is given.
type Collector struct {
	// mu serialises Set, Delete and Clear. Scrapes take no lock: they read
	// served, which writers replace.
	mu     sync.Mutex
	byKey  map[string]*entry
	served atomic.Pointer[[]*entry] // by name; one entry per name

	// process knows the families the process serves itself; nil when the
	// collector was made without a registry (then only the reserved
	// prefixes are refused).
	process *processNames
	// gatherer renders the families as protocol buffers, for the
	// exposition formats that are not text.
	gatherer *prometheus.Registry
}

var (
	_ prometheus.Collector = (*Collector)(nil)
	_ prometheus.Gatherer  = (*Collector)(nil)
)

// entry is one served family and its last rendering.
type entry struct {
	key    string
	name   string   // sanitised family name
	labels []string // sanitised label names
	order  []int    // indexes of labels in name order, as the text format sorts them
	header []byte   // the HELP and TYPE lines
	desc   *prometheus.Desc
	family Family

	// render serialises renderings of the entry, so that concurrent
	// scrapes of a changed family render it once.
	render sync.Mutex
	text   atomic.Pointer[rendered]
}

// rendered is an entry's text for one version of its family.
type rendered struct {
	version uint64
	text    []byte
}

// NewCollector returns an empty Collector.
func NewCollector() *Collector {
	c := &Collector{byKey: map[string]*entry{}}
	c.served.Store(&[]*entry{})
	c.gatherer = prometheus.NewRegistry()
	c.gatherer.MustRegister(c)
	return c
}

// newCollectorFor returns an empty Collector that serves beside the
// families of process: CheckName also refuses their names.
func newCollectorFor(process prometheus.Gatherer) *Collector {
	c := NewCollector()
	if process != nil {
		c.process = &processNames{gatherer: process}
	}
	return c
}

// Set serves f as the family of the metric identified by key, replacing
// what key served before. A family is served under its sanitised name;
// should two keys give one name, the smaller key is served.
func (c *Collector) Set(key string, f Family) {
	e := newEntry(key, f)
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.byKey[key]
	c.byKey[key] = e
	cur := *c.served.Load()
	if old != nil && old.name == e.name {
		if i := slices.Index(cur, old); i >= 0 {
			next := slices.Clone(cur)
			next[i] = e
			c.served.Store(&next)
			return
		}
	}
	if old == nil {
		// A new key: one insertion into the sorted list rather than a
		// sort of every family, which made a thousand metrics taken over
		// at once (a replica of a shard lost) cost a million comparisons.
		i, found := slices.BinarySearchFunc(cur, e.name, func(s *entry, name string) int { return cmp.Compare(s.name, name) })
		switch {
		case !found:
			c.served.Store(ptrTo(slices.Insert(slices.Clone(cur), i, e)))
		case e.key < cur[i].key:
			next := slices.Clone(cur)
			next[i] = e
			c.served.Store(&next)
		}
		return
	}
	c.publishLocked()
}

func ptrTo[T any](v T) *T { return &v }

// Delete stops serving what key set.
func (c *Collector) Delete(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.byKey[key]
	if !ok {
		return
	}
	delete(c.byKey, key)
	cur := *c.served.Load()
	i, found := slices.BinarySearchFunc(cur, old.name, func(s *entry, name string) int { return cmp.Compare(s.name, name) })
	if !found || cur[i] != old {
		return // another key's family was served under its name
	}
	// The smallest other key of the name takes its place, if any: one
	// pass over the keys rather than a sort of every family.
	var next *entry
	for _, e := range c.byKey {
		if e.name == old.name && (next == nil || e.key < next.key) {
			next = e
		}
	}
	served := slices.Clone(cur)
	if next != nil {
		served[i] = next
	} else {
		served = slices.Delete(served, i, i+1)
	}
	c.served.Store(&served)
}

// Clear forgets every family, as when the operator that filled the
// collector stops.
func (c *Collector) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byKey = map[string]*entry{}
	c.publishLocked()
}

// publishLocked rebuilds the served list from byKey.
func (c *Collector) publishLocked() {
	next := make([]*entry, 0, len(c.byKey))
	for _, e := range c.byKey {
		next = append(next, e)
	}
	slices.SortFunc(next, func(a, b *entry) int {
		return cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.key, b.key))
	})
	next = slices.CompactFunc(next, func(a, b *entry) bool { return a.name == b.name })
	c.served.Store(&next)
}

func newEntry(key string, f Family) *entry {
	e := &entry{key: key, name: SanitizeName(f.Name), family: f, labels: make([]string, len(f.LabelNames))}
	for i, l := range f.LabelNames {
		e.labels[i] = SanitizeLabel(l)
	}
	e.order = make([]int, len(e.labels))
	for i := range e.order {
		e.order[i] = i
	}
	slices.SortStableFunc(e.order, func(a, b int) int { return cmp.Compare(e.labels[a], e.labels[b]) })
	// Prometheus refuses a whole scrape over one HELP line that is not
	// UTF-8, so it is repaired as label values are.
	help := strings.ToValidUTF8(f.Help, "\uFFFD")
	if help == "" {
		help = "Metric " + e.name + " declared by a metrics.cloud.sap object."
	}
	// The client library's own checks decide which families are servable
	// (label names starting with "__", repeated label names), so the text
	// and the protocol buffer renderings serve the same families.
	e.desc = prometheus.NewDesc(e.name, help, e.labels, nil)
	e.header = appendHeader(nil, e.name, help)
	return e
}

// families returns the families a scrape serves.
func (c *Collector) families() []*entry {
	return *c.served.Load()
}

// servable reports whether e may be served: its name and labels are valid
// and its name is not one the process serves itself.
func (c *Collector) servable(e *entry) bool {
	return e.family.Samples != nil && e.desc.Err() == nil && !c.reserved(e.name)
}

// Describe sends nothing: the families change at run time, which makes
// this an unchecked collector.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect sends the samples of every family as constant metrics; it
// serves the exposition formats that are not text (see Gather). It
// renders what the text format renders: a family or sample the registry
// would reject is left out, and repeated label sets are summed.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, e := range c.families() {
		if !c.servable(e) {
			continue
		}
		for _, s := range e.samples() {
			m, err := prometheus.NewConstMetric(e.desc, prometheus.GaugeValue, s.Value, s.LabelValues...)
			if err != nil {
				continue
			}
			ch <- m
		}
	}
}

// Gather returns the families as protocol buffers. Scrapes in the text
// format write the stored renderings instead (WriteText).
func (c *Collector) Gather() ([]*dto.MetricFamily, error) {
	return c.gatherer.Gather()
}
