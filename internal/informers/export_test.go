package informers

import "k8s.io/apimachinery/pkg/runtime"

// MetaObjectMap returns the map a metaObject holds, and whether o is one.
func MetaObjectMap(o runtime.Object) (map[string]any, bool) {
	mo, ok := o.(*metaObject)
	if !ok {
		return nil, false
	}
	return mo.md, true
}
