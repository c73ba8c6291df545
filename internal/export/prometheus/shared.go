package prometheus

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	shared     *Collector
	sharedErr  error
	sharedOnce sync.Once
)

// Shared returns the process's collector, which serves beside the
// families of reg, the process's registry (see CheckName and Handler).
// It is one per process because the registry is: an operator that stops
// Clears it, and the next one in the same process (tests run several)
// starts from an empty collector. reg must also be a Gatherer.
func Shared(reg prometheus.Registerer) (*Collector, error) {
	sharedOnce.Do(func() {
		g, ok := reg.(prometheus.Gatherer)
		if !ok {
			sharedErr = errors.New("the process's registry cannot be gathered")
			return
		}
		shared = newCollectorFor(g)
	})
	return shared, sharedErr
}
