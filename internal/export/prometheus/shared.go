package prometheus

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	shared     *Collector
	sharedErr  error
	sharedOnce sync.Once
)

// Shared returns the process's collector, registered with reg on first
// use; the families reg serves besides it are reserved (see CheckName).
// An unchecked collector cannot be unregistered, so an operator that
// stops Clears it instead, and the next one in the same process (tests
// run several) starts from an empty collector rather than a second
// registration that would duplicate every family.
func Shared(reg prometheus.Registerer) (*Collector, error) {
	sharedOnce.Do(func() {
		g, _ := reg.(prometheus.Gatherer)
		shared = newCollectorFor(g)
		sharedErr = reg.Register(shared)
	})
	return shared, sharedErr
}
