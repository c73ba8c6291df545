package managed_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/internal/managed"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestCRDWatchKeepsLittlePerCRD gives a real API server, standing for a
// tenant's cluster, CRDs whose status carries a condition with a
// 1 MiB message (the CRD's status is the cluster's to write, and the API
// server bounds only the object's size), then runs a Watcher over it.
// The Watcher's store must not keep those messages: the heap it holds
// once synced stays far below their total. Before, it kept every
// condition of every CRD, and a tenant's cluster could make the operator
// hold a megabyte per CRD it serves.
func TestCRDWatchKeepsLittlePerCRD(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	const crds = 24
	message := strings.Repeat("m", 1<<20)
	for i := range crds {
		// Not managed (one category only), so that the kinds of the
		// other tests stay theirs: the store keeps every CRD all the same.
		c := crd(fmt.Sprintf("big%d.memory.test", i), "Big", "bigs", "crossplane")
		if err := env.Client.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), c) })
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(c), c); err != nil {
				return err
			}
			conds, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
			conds = append(conds, map[string]any{"type": "Hostile", "status": "True", "reason": "Big",
				"message": message, "lastTransitionTime": "2026-01-01T00:00:00Z"})
			if err := unstructured.SetNestedSlice(c.Object, conds, "status", "conditions"); err != nil {
				return err
			}
			return env.Client.Status().Update(ctx, c)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	before := heap()
	wctx, cancel := context.WithCancel(ctx)
	w := managed.NewWatcher("tenant", dyn)
	done := make(chan error)
	go func() { done <- w.Start(wctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	testenv.Eventually(t, time.Minute, func() error {
		if !w.Synced() {
			return errors.New("not synced")
		}
		return nil
	})
	held := int64(heap()) - int64(before)
	t.Logf("the Watcher holds %.1f MiB for %d CRDs with 1 MiB condition messages", float64(held)/(1<<20), crds)
	if limit := int64(crds) << 20 / 4; held > limit {
		t.Errorf("the Watcher holds %d bytes, want under %d (a quarter of the messages' total)", held, limit)
	}
	runtime.KeepAlive(w)
}

// heap returns the live heap after a full collection.
func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
