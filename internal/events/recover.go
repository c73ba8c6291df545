package events

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/registry"
)

// recovered, deferred around one metric's evaluation, turns a panic into
// that metric's error: the subscription is disabled (its aggregate may be
// half updated) and reports InvalidProjection until its spec changes,
// while the watch and the other metrics go on.
func recovered(key registry.InformerKey, s *registry.Subscription, path string, changed *bool) {
	r := recover()
	if r == nil {
		return
	}
	*changed = false
	s.Disable(PanicError(s.ID, path, r, "informer", key.String()))
}

// PanicError records a panic recovered while evaluating the metric id on
// path ("upsert", "delete", "relist", "poll"): it counts it, logs it with
// its stack at error level, and returns the error the metric reports.
// Neither the log nor the error quotes the panic's value unless it is a
// runtime error (which names types and indexes, never object content):
// a value built from an object could carry anything.
func PanicError(id, path string, r any, keysAndValues ...any) error {
	evaluationPanics.WithLabelValues(path).Inc()
	what := fmt.Sprintf("panic of type %T", r)
	if re, ok := r.(runtime.Error); ok {
		what = re.Error()
	}
	kv := append([]any{"metric", id, "path", path, "stack", string(debug.Stack())}, keysAndValues...)
	ctrl.Log.WithName("events").Error(fmt.Errorf("evaluation panicked: %s", what),
		"Evaluating a metric panicked; it is not evaluated until its spec changes", kv...)
	return reason.New(v1alpha1.ReasonInvalidProjection,
		"evaluating this metric failed on an object (an internal error, logged by the operator with its stack); "+
			"the metric is not evaluated until its spec changes: check its projections, valueFrom and selectors")
}

// testHook, when set, runs before every evaluation of an object on the
// event path. Only tests set it (SetTestHook), to make evaluation panic on
// chosen objects when no real evaluator bug is left to do so.
var testHook atomic.Pointer[func(id string, obj map[string]any)]

// SetTestHook installs f as the test hook (nil removes it). It is for
// tests only: production code never calls it.
func SetTestHook(f func(id string, obj map[string]any)) {
	if f == nil {
		testHook.Store(nil)
		return
	}
	testHook.Store(&f)
}

func runTestHook(id string, obj map[string]any) {
	if f := testHook.Load(); f != nil {
		(*f)(id, obj)
	}
}

// hooked reports whether a test hook is installed.
func hooked() bool { return testHook.Load() != nil }
