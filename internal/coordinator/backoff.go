package coordinator

import "time"

// Default export backoff: the first retry of a failing DataSink after 1 s,
// doubling up to 5 minutes. A sink that is down for long is then tried
// about twelve times an hour, and comes back within 5 minutes of
// recovering.
const (
	DefaultExportBackoffBase = time.Second
	DefaultExportBackoffCap  = 5 * time.Minute
)

// DefaultExportTimeout bounds one push attempt when Options.ExportTimeout
// is unset.
const DefaultExportTimeout = 10 * time.Second

// Backoff is how long a DataSink waits after consecutive failed pushes
// before the next attempt. It has no jitter: sinks fail independently, so
// their retries do not synchronise, and a fixed schedule can be checked.
type Backoff struct {
	// Base is the wait after the first failure; each further failure
	// doubles it.
	Base time.Duration
	// Cap is the longest wait.
	Cap time.Duration
}

// Delay is the wait after the given number of consecutive failures
// (Base·2^(failures-1), at most Cap); zero when there are none.
func (b Backoff) Delay(failures int) time.Duration {
	if failures <= 0 {
		return 0
	}
	d := b.Base
	for range failures - 1 {
		if d >= b.Cap/2 {
			return b.Cap
		}
		d *= 2
	}
	return min(d, b.Cap)
}
