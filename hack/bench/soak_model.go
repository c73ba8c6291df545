package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

// projectionSets are the projections a soak metric may have; the last
// one has none (a single series: the count of every selected object).
var projectionSets = [][]string{{"tier"}, {"team"}, {"team", "tier"}, nil}

// soakMetric is the soak's model of one Metric object: everything its
// expected values follow from.
type soakMetric struct {
	obj      string // metadata.name
	name     string // spec.name; a rename gives it a name never used before
	shape    int    // the selector of metricFor(shape)
	proj     int    // index into projectionSets
	mode     string
	baseline bool // present from before the baseline to the end, never edited
	id, gen  int  // a dynamic metric's number and how often it was renamed
}

// dynamicName is the spec.name of dynamic metric id after gen renames.
func dynamicName(id, gen int) string { return fmt.Sprintf("soak_d%04d_%d", id, gen) }

// bench returns the metric as the benchmark's model computes it.
func (m *soakMetric) bench() benchMetric {
	b := metricFor(m.shape)
	b.name = m.name
	b.projections = projectionSets[m.proj]
	return b
}

// object is the Metric object for m; it pushes to the soak's DataSink.
func (m *soakMetric) object(pollInterval time.Duration) *v1alpha1.Metric {
	o := m.bench().object(m.mode, pollInterval, metricsNamespace)
	o.Name = m.obj
	o.Spec.DataSinkRef = &v1alpha1.DataSinkReference{Name: sinkName}
	return o
}

// statusMode is what the Metric's status.mode must say.
func (m *soakMetric) statusMode() v1alpha1.UpdateMode {
	if m.mode == modeEventDriven {
		return v1alpha1.ModeEventDriven
	}
	return v1alpha1.ModePolling
}

// metricSet is the soak's Metric objects: the live ones and the names
// (spec.name) that stopped being live, with when.
type metricSet struct {
	mu   sync.Mutex
	live map[string]*soakMetric // by metadata.name
	gone map[string]time.Time   // spec.name → deleted or renamed at
	next int
	ops  map[string]int // completed operations by kind
}

func newMetricSet() *metricSet {
	return &metricSet{live: map[string]*soakMetric{}, gone: map[string]time.Time{}, ops: map[string]int{}}
}

// snapshot returns copies of the live metrics.
func (s *metricSet) snapshot() []soakMetric {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]soakMetric, 0, len(s.live))
	for _, m := range s.live {
		out = append(out, *m)
	}
	return out
}

func (s *metricSet) dynamic() []*soakMetric {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*soakMetric
	for _, m := range s.live {
		if !m.baseline {
			out = append(out, m)
		}
	}
	return out
}

func (s *metricSet) goneNames() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.gone))
	for k, v := range s.gone {
		out[k] = v
	}
	return out
}

func (s *metricSet) opCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.ops))
	for k, v := range s.ops {
		out[k] = v
	}
	return out
}

// The dynamic metrics: between minDynamic and maxDynamic live at a time,
// beside the baseline ones, with selectors from metricFor(0..shapes-1).
const (
	minDynamic = 3
	maxDynamic = 10
	shapes     = 40
)

// create adds a Metric object for m.
func (s *soak) createMetric(ctx context.Context, m *soakMetric) error {
	if err := s.h.c.Create(ctx, m.object(s.cfg.pollInterval)); err != nil {
		return fmt.Errorf("creating Metric %s: %w", m.obj, err)
	}
	s.metrics.mu.Lock()
	s.metrics.live[m.obj] = m
	s.metrics.mu.Unlock()
	return nil
}

// metricOp makes one change to the dynamic metrics: a create, a delete,
// or an edit of one (selector, projections, mode, spec.name).
func (s *soak) metricOp(ctx context.Context) error {
	dyn := s.metrics.dynamic()
	op := ""
	switch {
	case len(dyn) < minDynamic:
		op = "create"
	case len(dyn) >= maxDynamic:
		op = "delete"
	default:
		ops := []string{"create", "create", "delete", "delete", "selector", "selector", "selector",
			"projection", "projection", "mode", "mode", "mode", "rename"}
		op = ops[rand.IntN(len(ops))]
	}
	if op == "create" {
		s.metrics.mu.Lock()
		n := s.metrics.next
		s.metrics.next++
		s.metrics.mu.Unlock()
		mode := modePolling
		if rand.IntN(2) == 0 {
			mode = modeEventDriven
		}
		m := &soakMetric{obj: fmt.Sprintf("soak-d%04d", n), name: dynamicName(n, 0), id: n,
			shape: rand.IntN(shapes), proj: rand.IntN(len(projectionSets)), mode: mode}
		if err := s.createMetric(ctx, m); err != nil {
			return err
		}
		s.countOp(op)
		return nil
	}
	m := dyn[rand.IntN(len(dyn))]
	if op == "delete" {
		obj := &v1alpha1.Metric{ObjectMeta: metav1.ObjectMeta{Name: m.obj, Namespace: metricsNamespace}}
		if err := s.h.c.Delete(ctx, obj); err != nil {
			return fmt.Errorf("deleting Metric %s: %w", m.obj, err)
		}
		s.metrics.mu.Lock()
		delete(s.metrics.live, m.obj)
		s.metrics.gone[m.name] = time.Now()
		s.metrics.ops[op]++
		s.metrics.mu.Unlock()
		return nil
	}
	next := *m
	switch op {
	case "selector":
		for next.shape == m.shape {
			next.shape = rand.IntN(shapes)
		}
	case "projection":
		next.proj = (m.proj + 1 + rand.IntN(len(projectionSets)-1)) % len(projectionSets)
	case "mode":
		next.mode = modePolling
		if m.mode == modePolling {
			next.mode = modeEventDriven
		}
	case "rename":
		next.gen++
		next.name = dynamicName(m.id, next.gen)
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &v1alpha1.Metric{}
		if err := s.h.c.Get(ctx, client.ObjectKey{Namespace: metricsNamespace, Name: m.obj}, cur); err != nil {
			return err
		}
		cur.Spec = next.object(s.cfg.pollInterval).Spec
		return s.h.c.Update(ctx, cur)
	})
	if err != nil {
		return fmt.Errorf("editing the %s of Metric %s: %w", op, m.obj, err)
	}
	s.metrics.mu.Lock()
	if next.name != m.name {
		s.metrics.gone[m.name] = time.Now()
	}
	*m = next
	s.metrics.ops[op]++
	s.metrics.mu.Unlock()
	return nil
}

func (s *soak) countOp(op string) {
	s.metrics.mu.Lock()
	s.metrics.ops[op]++
	s.metrics.mu.Unlock()
}

// churner creates and deletes ConfigMaps beside the benchmark's objects:
// objects first..first+len(present)-1, with the team and tier that the
// benchmark's model gives a new object k. It alone writes them, so
// present is exact once it has stopped.
type churner struct {
	h       *harness
	first   int
	present []bool
	dirty   map[int]bool
	stopCh  chan struct{}
	done    chan struct{}
	creates atomic.Int64
	deletes atomic.Int64
	failed  atomic.Int64
}

func newChurner(h *harness, first, n int) *churner {
	return &churner{h: h, first: first, present: make([]bool, n), dirty: map[int]bool{}}
}

func (c *churner) object(j int) *corev1.ConfigMap {
	k := c.first + j
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: objectName(k), Namespace: objectsNamespace,
		Labels: map[string]string{"team": teamValue(k % teams), "tier": tierValue((k / teams) % tiers), "app": "bench"}}}
}

// flip creates object j when absent and deletes it when present.
func (c *churner) flip(ctx context.Context, j int) error {
	var err error
	if c.present[j] {
		err = client.IgnoreNotFound(c.h.c.Delete(ctx, c.object(j)))
		if err == nil {
			c.deletes.Add(1)
		}
	} else {
		err = c.h.c.Create(ctx, c.object(j))
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
		if err == nil {
			c.creates.Add(1)
		}
	}
	if err != nil {
		c.failed.Add(1)
		c.dirty[j] = true
		return err
	}
	c.present[j] = !c.present[j]
	return nil
}

// start flips a random object perSecond times a second until stop.
func (c *churner) start(ctx context.Context, perSecond float64) {
	c.stopCh, c.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(c.done)
		t := time.NewTicker(time.Duration(float64(time.Second) / perSecond))
		defer t.Stop()
		for {
			select {
			case <-c.stopCh:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			_ = c.flip(ctx, rand.IntN(len(c.present)))
		}
	}()
}

// stop stops the churn and reads back the objects whose writes failed.
func (c *churner) stop(ctx context.Context) error {
	close(c.stopCh)
	<-c.done
	for j := range c.dirty {
		err := c.h.c.Get(ctx, client.ObjectKeyFromObject(c.object(j)), &corev1.ConfigMap{})
		switch {
		case err == nil:
			c.present[j] = true
		case apierrors.IsNotFound(err):
			c.present[j] = false
		default:
			return fmt.Errorf("reading back %s: %w", objectName(c.first+j), err)
		}
	}
	c.dirty = map[int]bool{}
	return nil
}

// cells adds the churned objects that exist to the benchmark's cells.
func (c *churner) cells(base [teams][tiers]int) [teams][tiers]int {
	for j, p := range c.present {
		if p {
			k := c.first + j
			base[k%teams][(k/teams)%tiers]++
		}
	}
	return base
}
