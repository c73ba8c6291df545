package managed_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/SAP/metrics-operator/internal/managed"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// TestCRDWatchKeepsLittlePerCRD gives a real API server, standing for a
// tenant's cluster, managed CRDs whose status carries a condition with a
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
		c := crd(fmt.Sprintf("big%d.memory.test", i), "Big", "bigs", "crossplane", "managed")
		if err := env.Client.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteAndWait(t, c) })
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
		if n := len(w.Kinds()); !w.Synced() || n < crds {
			return fmt.Errorf("synced %v with %d kinds, want %d", w.Synced(), n, crds)
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

// deleteAndWait deletes a CRD and waits until it is gone, so the tests
// after see only their own.
func deleteAndWait(t *testing.T, c *unstructured.Unstructured) {
	ctx := context.Background()
	if err := env.Client.Delete(ctx, c); err != nil && !apierrors.IsNotFound(err) {
		t.Error(err)
		return
	}
	testenv.Eventually(t, time.Minute, func() error {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(c), c.DeepCopy())
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("CRD %s not gone yet (%v)", c.GetName(), err)
	})
}
