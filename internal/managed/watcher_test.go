package managed_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/SAP/metrics-operator/internal/managed"
	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	testenv.Main(m, &env)
}

func crd(group, kind, plural string, categories ...any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": plural + "." + group},
		"spec": map[string]any{
			"group": group, "scope": "Cluster",
			"names": map[string]any{"kind": kind, "listKind": kind + "List", "plural": plural, "categories": categories},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
}

// TestWatcherFollowsManagedCRDs runs a Watcher against a real API server:
// it lists the managed kinds once synced, tells its subscribers when a
// managed CRD appears, loses a category or goes, and stays quiet about
// CRDs that are not managed.
func TestWatcherFollowsManagedCRDs(t *testing.T) {
	testenv.Require(t, env)
	ctx, cancel := context.WithCancel(t.Context())
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	buckets := crd("s3.watch.test", "Bucket", "buckets", "crossplane", "managed")
	if err := env.Client.Create(ctx, buckets); err != nil {
		t.Fatal(err)
	}
	w := managed.NewWatcher("local", dyn)
	changes := w.Subscribe()
	done := make(chan error)
	go func() { done <- w.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	kinds := func() []string {
		var out []string
		for _, k := range w.Kinds() {
			out = append(out, k.GroupKind.String()+"@"+k.Versions[0])
		}
		return out
	}
	// waitChange waits for a notification, then for the kinds to be want,
	// then takes the notifications still coming for what it saw: the sync
	// notifies, and a CRD created just before it may become established
	// just after and notify again; and the kinds change just before the
	// notification is sent.
	waitChange := func(want ...string) {
		t.Helper()
		select {
		case <-changes:
		case <-time.After(30 * time.Second):
			t.Fatalf("no change notified; kinds %v, want %v", kinds(), want)
		}
		testenv.Eventually(t, 5*time.Second, func() error {
			if got := kinds(); fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("kinds %v, want %v", got, want)
			}
			return nil
		})
		for {
			select {
			case <-changes:
				continue
			case <-time.After(500 * time.Millisecond):
			}
			return
		}
	}
	// The sync notifies once, with the CRD that existed before.
	waitChange("Bucket.s3.watch.test@v1")
	if !w.Synced() {
		t.Fatal("notified before synced")
	}

	queues := crd("sqs.watch.test", "Queue", "queues", "managed", "crossplane", "aws")
	if err := env.Client.Create(ctx, queues); err != nil {
		t.Fatal(err)
	}
	waitChange("Bucket.s3.watch.test@v1", "Queue.sqs.watch.test@v1")

	// A CRD with only one of the categories is not managed: no news.
	plain := crd("plain.watch.test", "Gadget", "gadgets", "crossplane")
	if err := env.Client.Create(ctx, plain); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
		t.Fatalf("notified for a CRD that is not managed; kinds %v", kinds())
	case <-time.After(2 * time.Second):
	}

	// Dropping a category makes the kind unmanaged.
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(queues), queues); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedSlice(queues.Object, []any{"crossplane"}, "spec", "names", "categories"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Update(ctx, queues); err != nil {
		t.Fatal(err)
	}
	waitChange("Bucket.s3.watch.test@v1")

	for _, c := range []*unstructured.Unstructured{buckets, queues, plain} {
		if err := env.Client.Delete(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	waitChange()
	if got := w.Kinds(); len(got) != 0 {
		t.Fatalf("kinds after the CRDs went: %v", got)
	}
}
