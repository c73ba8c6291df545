package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// writers rotate the tier label of random target ConfigMaps at a fixed
// rate. Worker w owns the objects k with k%workers == w, so the model of
// each object is updated by one goroutine in write order.
type writers struct {
	h       *harness
	stopCh  chan struct{}
	wg      sync.WaitGroup
	done    atomic.Int64
	failed  atomic.Int64
	dropped atomic.Int64
	// dirty are objects whose last write failed: their state is read
	// back after the writers stop.
	mu    sync.Mutex
	dirty map[int]bool
}

func (h *harness) startWriters(ctx context.Context, perSecond int) *writers {
	w := &writers{h: h, stopCh: make(chan struct{}), dirty: map[int]bool{}}
	if perSecond <= 0 {
		return w
	}
	n := h.cfg.objects
	workers := min(h.cfg.writers, n)
	tokens := make([]chan struct{}, workers)
	for i := range tokens {
		tokens[i] = make(chan struct{}, 8)
	}
	// Feeder: perSecond tokens a second, in 10 ms steps, round robin over
	// the workers; a token a busy worker cannot take is dropped (counted).
	w.wg.Go(func() {
		const tick = 10 * time.Millisecond
		t := time.NewTicker(tick)
		defer t.Stop()
		acc, next := 0.0, 0
		for {
			select {
			case <-w.stopCh:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			acc += float64(perSecond) * tick.Seconds()
			for ; acc >= 1; acc-- {
				select {
				case tokens[next] <- struct{}{}:
				default:
					w.dropped.Add(1)
				}
				next = (next + 1) % workers
			}
		}
	})
	for id := range workers {
		owned := (n - id + workers - 1) / workers
		w.wg.Go(func() {
			for {
				select {
				case <-w.stopCh:
					return
				case <-ctx.Done():
					return
				case <-tokens[id]:
				}
				k := id + workers*rand.IntN(owned)
				tier := (h.model.tierOf(k) + 1) % tiers
				// The request uses ctx, not stopCh: a write in flight when the
				// window ends completes and the model stays exact.
				if err := h.patchLabels(ctx, objectName(k), map[string]string{"tier": tierValue(tier)}); err != nil {
					w.failed.Add(1)
					w.mu.Lock()
					w.dirty[k] = true
					w.mu.Unlock()
					continue
				}
				h.model.tier[k] = uint8(tier)
				w.done.Add(1)
			}
		})
	}
	return w
}

func (w *writers) counts() (done, failed, dropped int64) {
	return w.done.Load(), w.failed.Load(), w.dropped.Load()
}

// stop stops the writers, waits for writes in flight and reads back the
// objects whose writes failed, so that the model is exact again.
func (w *writers) stop(ctx context.Context) error {
	close(w.stopCh)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.dirty {
		cm := &corev1.ConfigMap{}
		if err := w.h.c.Get(ctx, client.ObjectKey{Namespace: objectsNamespace, Name: objectName(k)}, cm); err != nil {
			return fmt.Errorf("reading back %s: %w", objectName(k), err)
		}
		tier := -1
		for t := range tiers {
			if cm.Labels["tier"] == tierValue(t) {
				tier = t
			}
		}
		if tier < 0 {
			return fmt.Errorf("%s has tier %q", objectName(k), strconv.Quote(cm.Labels["tier"]))
		}
		w.h.model.tier[k] = uint8(tier)
	}
	w.dirty = map[int]bool{}
	return nil
}
