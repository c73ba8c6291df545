package federation_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/SAP/metrics-operator/internal/federation"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

var configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

func startWatches(t *testing.T, client dynamic.Interface) *federation.Watches {
	t.Helper()
	w := federation.NewWatches(client)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// TestWatchesShared: two users of one key share one watch, are both told
// of a new object, read it from the store, and the watch stops with its
// last user.
func TestWatchesShared(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	ns := "watches-shared"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	w := startWatches(t, dynamic.NewForConfigOrDie(env.Config))
	key := federation.WatchKey{GVR: configMaps, Namespace: ns, LabelSelector: "fed=yes"}
	var a, b atomic.Int32
	w.Ensure("a", key, func() { a.Add(1) })
	w.Ensure("b", key, func() { b.Add(1) })
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := len(w.Active()); n != 1 {
			return fmt.Errorf("%d watches for one key, want 1", n)
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		_, err := w.Objects("a")
		return err
	})
	before := a.Load()
	for _, name := range []string{"in", "out"} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"fed": "no"}}}
		if name == "in" {
			cm.Labels["fed"] = "yes"
		}
		if err := env.Client.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		objs, err := w.Objects("b")
		if err != nil {
			return err
		}
		if len(objs) != 1 || objs[0].GetName() != "in" {
			return fmt.Errorf("%d objects, want the one labelled", len(objs))
		}
		if a.Load() == before || b.Load() == 0 {
			return fmt.Errorf("a user was not told")
		}
		return nil
	})
	w.Release("a")
	if n := len(w.Active()); n != 1 {
		t.Errorf("%d watches after one of two users left, want 1", n)
	}
	w.Release("b")
	if n := len(w.Active()); n != 0 {
		t.Errorf("%d watches after the last user left, want 0", n)
	}
	if _, err := w.Objects("b"); !errors.Is(err, federation.ErrNotSynced) {
		t.Errorf("Objects of a released user: %v", err)
	}
}

// TestWatchesForbidden: a watch the API server refuses tells its user,
// and Objects says why it has no objects.
func TestWatchesForbidden(t *testing.T) {
	testenv.Require(t, env)
	user, err := env.AddUser(envtest.User{Name: "no-rights"})
	if err != nil {
		t.Fatal(err)
	}
	w := startWatches(t, dynamic.NewForConfigOrDie(user.Config()))
	var told atomic.Int32
	w.Ensure("a", federation.WatchKey{GVR: configMaps, Namespace: "default"}, func() { told.Add(1) })
	testenv.Eventually(t, 20*time.Second, func() error {
		_, err := w.Objects("a")
		var failed *federation.NotSyncedError
		if !errors.As(err, &failed) || !apierrors.IsForbidden(failed.Err) || !errors.Is(err, federation.ErrNotSynced) {
			return fmt.Errorf("objects: %w", err)
		}
		if told.Load() == 0 {
			return fmt.Errorf("the user was not told")
		}
		return nil
	})
}
