package informers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
)

// store is the Reflector's store: instead of keeping objects it hands
// them to the events handler, under the informer's lock.
type store struct{ i *informer }

var _ cache.ReflectorStore = (*store)(nil)

func (s *store) Add(obj any) error    { return s.upsert(obj) }
func (s *store) Update(obj any) error { return s.upsert(obj) }

func (s *store) upsert(obj any) error {
	m := s.i.toMap(obj)
	if m == nil {
		return nil
	}
	s.i.mu.Lock()
	defer s.i.mu.Unlock()
	s.i.handler.Upsert(s.i.key, m)
	return nil
}

func (s *store) Delete(obj any) error {
	// A tombstone carries the last state the watch saw.
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m := s.i.toMap(obj)
	if m == nil {
		return nil
	}
	s.i.mu.Lock()
	defer s.i.mu.Unlock()
	s.i.handler.Delete(s.i.key, m)
	return nil
}

// Replace is the watch's initial list, or a relist after the watch
// expired: every subscriber recomputes from it.
func (s *store) Replace(list []any, _ string) error {
	start := time.Now()
	objs := make([]map[string]any, 0, len(list))
	for _, o := range list {
		if m := s.i.toMap(o); m != nil {
			objs = append(objs, m)
		}
	}
	s.i.mu.Lock()
	defer s.i.mu.Unlock()
	s.i.handler.Replace(s.i.key, objs)
	first := !s.i.synced
	s.i.synced = true
	if first {
		ctrl.Log.WithName("informers").Info("Informer synced", "informer", s.i.key.String(),
			"objects", len(objs), "duration", time.Since(start).String())
	}
	return nil
}

func (s *store) Resync() error { return nil }

// toMap returns an object's content as the evaluation engine reads it. A
// metadata-only object gets the target's apiVersion and kind, so metrics
// read the same values from either kind of watch.
func (i *informer) toMap(obj any) map[string]any {
	switch o := obj.(type) {
	case *unstructured.Unstructured:
		return o.Object
	case *metav1.PartialObjectMetadata:
		meta, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&o.ObjectMeta)
		if err != nil {
			return nil
		}
		delete(meta, "managedFields")
		apiVersion, kind := i.gvk.ToAPIVersionAndKind()
		return map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": meta}
	case cache.DeletedFinalStateUnknown:
		return i.toMap(o.Obj)
	}
	return nil
}
