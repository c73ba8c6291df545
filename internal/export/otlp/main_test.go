package otlp

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any exporter, connection or receiver
// goroutine outlives the tests, which is what Pool.Shutdown and
// Pool.Remove promise.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
