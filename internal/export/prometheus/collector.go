package prometheus

import (
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
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
	// Samples returns the current series. It is called on every scrape,
	// so a producer never renders samples for a scrape nobody makes.
	Samples func() []Sample
}

// Sample is one series.
type Sample struct {
	LabelValues []string
	Value       float64
}

// Claim identifies the metric object behind a family; the oldest claim on
// a name owns it.
type Claim struct {
	// Key identifies the metric object, for example "Metric/ns/name".
	Key string
	// Created is the object's creation time.
	Created time.Time
}

func (a Claim) less(b Claim) bool {
	if c := a.Created.Compare(b.Created); c != 0 {
		return c < 0
	}
	return a.Key < b.Key
}

type held struct {
	claim  Claim
	name   string   // sanitised family name
	labels []string // sanitised label names
	desc   *prometheus.Desc
	family Family
}

// Collector holds the families of all metrics and renders them on scrape.
type Collector struct {
	// OnOwnerChange, if set, is called (outside the lock) with the keys of
	// metrics that gained or lost ownership of their name through another
	// metric's Set or Delete.
	OnOwnerChange func(keys []string)

	mu     sync.RWMutex
	byKey  map[string]*held
	byName map[string][]*held // claimants, oldest first

	// process knows the families the process serves itself; nil when the
	// collector was made without a registry (then only the reserved
	// prefixes are refused).
	process *processNames
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns an empty Collector.
func NewCollector() *Collector {
	return &Collector{byKey: map[string]*held{}, byName: map[string][]*held{}}
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

// Set stores the family of the metric identified by claim and reports
// whether it owns its name (and so is served). Another metric that lost or
// gained ownership through this call is reported to OnOwnerChange.
func (c *Collector) Set(claim Claim, f Family) (owner bool, ownerKey string) {
	name := SanitizeName(f.Name)
	labels := make([]string, len(f.LabelNames))
	for i, l := range f.LabelNames {
		labels[i] = SanitizeLabel(l)
	}
	c.mu.Lock()
	h := c.byKey[claim.Key]
	var changed []string
	if h == nil || h.name != name || !slices.Equal(h.labels, labels) || h.family.Help != f.Help {
		if h != nil {
			changed = c.remove(h)
		}
		h = &held{claim: claim, name: name, labels: labels, desc: newDesc(name, f.Help, labels)}
		c.byKey[claim.Key] = h
		changed = append(changed, c.insert(h)...)
	}
	h.family = f
	first := c.byName[name][0]
	c.mu.Unlock()
	c.notify(changed)
	return first == h, first.claim.Key
}

// Delete forgets a metric; a younger claimant of its name takes over.
func (c *Collector) Delete(key string) {
	c.mu.Lock()
	h := c.byKey[key]
	var changed []string
	if h != nil {
		changed = c.remove(h)
	}
	c.mu.Unlock()
	c.notify(changed)
}

func (c *Collector) notify(keys []string) {
	if len(keys) > 0 && c.OnOwnerChange != nil {
		c.OnOwnerChange(keys)
	}
}

// insert adds h to its name's claimants and returns the key of a previous
// owner that h displaced.
func (c *Collector) insert(h *held) []string {
	list := c.byName[h.name]
	i := 0
	for i < len(list) && list[i].claim.less(h.claim) {
		i++
	}
	list = slices.Insert(list, i, h)
	c.byName[h.name] = list
	if i == 0 && len(list) > 1 {
		return []string{list[1].claim.Key}
	}
	return nil
}

// remove drops h and returns the key of the claimant that now owns the
// name, if h owned it.
func (c *Collector) remove(h *held) []string {
	delete(c.byKey, h.claim.Key)
	list := c.byName[h.name]
	i := slices.Index(list, h)
	if i < 0 {
		return nil
	}
	list = slices.Delete(list, i, i+1)
	if len(list) == 0 {
		delete(c.byName, h.name)
		return nil
	}
	c.byName[h.name] = list
	if i == 0 {
		return []string{list[0].claim.Key}
	}
	return nil
}

func newDesc(name, help string, labels []string) *prometheus.Desc {
	if help == "" {
		help = "Metric " + name + " declared by a metrics.cloud.sap object."
	}
	return prometheus.NewDesc(name, help, labels, nil)
}

// Describe sends nothing: the families change at run time, which makes
// this an unchecked collector.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect renders the owner's family of every name. Whatever a family
// holds, it never makes the registry's Gather fail: a name reserved for
// the operator's own families is left out, label values that are not
// UTF-8 are repaired, repeated series are dropped and a malformed
// family (an invalid label name, a wrong number of values) is skipped.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for name, list := range c.byName {
		h := list[0]
		if h.family.Samples == nil || h.desc.Err() != nil || c.reserved(name) {
			continue
		}
		for _, s := range dedupe(validUTF8(h.family.Samples())) {
			m, err := prometheus.NewConstMetric(h.desc, prometheus.GaugeValue, s.Value, s.LabelValues...)
			if err != nil {
				continue
			}
			ch <- m
		}
	}
}

// validUTF8 replaces invalid bytes in label values with U+FFFD, in
// place: Samples returns fresh slices on every call. The registry refuses
// a value that is not UTF-8, and Kubernetes strings normally are, so this
// only costs a scan.
func validUTF8(samples []Sample) []Sample {
	for _, s := range samples {
		for i, v := range s.LabelValues {
			if !utf8.ValidString(v) {
				s.LabelValues[i] = strings.ToValidUTF8(v, "\uFFFD")
			}
		}
	}
	return samples
}

// dedupe drops samples whose label values repeat an earlier sample's, as
// two equal samples would fail the whole scrape. The evaluator already
// folds an empty dimension into an absent one, so this is a last guard
// (against a family from another source, or values equal once repaired).
func dedupe(samples []Sample) []Sample {
	seen := make(map[string]struct{}, len(samples))
	out := samples[:0:0]
	for _, s := range samples {
		k := strings.Join(s.LabelValues, "\xff")
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, s)
	}
	return out
}

// Owner reports whether the metric with key owns its family name, and the
// key of the owner.
func (c *Collector) Owner(key string) (owner bool, ownerKey string) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	h := c.byKey[key]
	if h == nil {
		return false, ""
	}
	first := c.byName[h.name][0]
	return first == h, first.claim.Key
}

// Clear forgets every family, as when the operator that filled the
// collector stops.
func (c *Collector) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byKey = map[string]*held{}
	c.byName = map[string][]*held{}
}
