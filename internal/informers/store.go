package informers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"
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
	if s.i.overLimit.Load() {
		return nil // stopping: it holds nothing more
	}
	if held := s.i.handler.Upsert(s.i.key, m); s.i.over(held) || s.i.charge(held) {
		s.i.trip()
	}
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
	if s.i.tenant != nil {
		s.i.charge(s.i.handler.Held(s.i.key))
	}
	return nil
}

// Replace is called by the Reflector after every (re)list. listWatch has
// already streamed the objects into the subscribers and hands over an
// empty list; a non-empty one (should a Reflector ever list by other
// means) is applied in full.
func (s *store) Replace(list []any, _ string) error {
	if len(list) == 0 {
		return nil
	}
	if s.i.over(len(list)) || s.i.charge(len(list)) {
		s.i.trip()
		return errObjectLimit
	}
	objs := make([]map[string]any, 0, len(list))
	for _, o := range list {
		if m := s.i.toMap(o); m != nil {
			objs = append(objs, m)
		}
	}
	s.i.mu.Lock()
	defer s.i.mu.Unlock()
	s.i.handler.Replace(s.i.key, objs)
	s.i.setSynced(true)
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
	case *metaObject:
		return map[string]any{"apiVersion": i.apiVersion, "kind": i.kind, "metadata": o.md}
	case *metav1.PartialObjectMetadata:
		return map[string]any{"apiVersion": i.apiVersion, "kind": i.kind, "metadata": metadataMap(&o.ObjectMeta)}
	case cache.DeletedFinalStateUnknown:
		return i.toMap(o.Obj)
	}
	return nil
}
