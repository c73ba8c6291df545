package informers

import (
	"math"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
)

// healthyWatch is how long a watch must have run after a successful list
// for its end to count as an ordinary expiry rather than part of a
// failure streak: the relist then starts from the first backoff step
// again, so an expiry every few minutes costs well under a second each
// time, while a watch that keeps failing right after its list backs off
// to relistBackoff's cap.
const healthyWatch = 10 * time.Second

// relistBackoff is the wait before listing again after ListAndWatch
// returned (the watch expired, ended with an error, or the list failed).
// The first step is short, as client-go's own informers relist after an
// expiry; the jitter spreads the relists of many watches that expired
// together (an API server restart).
var relistBackoff = wait.Backoff{
	Duration: 500 * time.Millisecond,
	Factor:   2,
	Jitter:   0.5,
	Steps:    math.MaxInt32,
	Cap:      20 * time.Second,
}

// rewatchBackoff is the Reflector's wait before it tries again to open a
// watch the API server refused (connection refused, 429). Its cap bounds
// how long after an API server comes back the watch resumes; client-go's
// default cap (30 s, jittered up to 60 s) would leave values stale for
// that long after a restart. A refused connection costs the API server
// nothing, so retrying every couple of seconds is cheap.
var rewatchBackoff = wait.Backoff{
	Duration: 200 * time.Millisecond,
	Factor:   2,
	Jitter:   0.25,
	Steps:    math.MaxInt32,
	Cap:      2 * time.Second,
}

// relistDelays decides how long a watch waits before it lists again.
// Not safe for concurrent use: each watch has its own.
type relistDelays struct {
	b wait.Backoff
}

func newRelistDelays() *relistDelays { return &relistDelays{b: relistBackoff} }

// next returns the wait after a ListAndWatch that ended with err. healthy
// says whether it listed successfully and then watched for at least
// healthyWatch: that ends a failure streak, so the backoff starts over.
// While the API server refuses connections, the wait is capped as the
// Reflector's own retries are: listing an unreachable server costs it
// nothing, and the watch should resume soon after it answers.
func (d *relistDelays) next(healthy bool, err error) time.Duration {
	if healthy {
		d.b = relistBackoff
	}
	delay := d.b.Step()
	if err != nil && utilnet.IsConnectionRefused(err) {
		delay = min(delay, wait.Jitter(rewatchBackoff.Cap, rewatchBackoff.Jitter))
	}
	return delay
}
