package testenv

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RequestCounter counts the API requests a client makes, by verb (LIST,
// WATCH, GET, ...) and path, so tests can assert on the load a component
// puts on the API server. For watches it also tracks how many are open at
// once and how each one ended: the API server may close a watch (a
// CRD's storage being rebuilt, a timeout), and a client that watches
// again is still sharing one watch.
type RequestCounter struct {
	mu      sync.Mutex
	counts  map[string]int
	open    map[string]int
	maxOpen map[string]int
	ended   map[string][]string
}

// NewRequestCounter returns an empty counter.
func NewRequestCounter() *RequestCounter {
	return &RequestCounter{counts: map[string]int{}, open: map[string]int{}, maxOpen: map[string]int{},
		ended: map[string][]string{}}
}

// Wrap is a rest.Config transport wrapper.
func (c *RequestCounter) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		v := verb(r)
		c.mu.Lock()
		c.counts[v+" "+r.URL.Path]++
		c.mu.Unlock()
		if v != "WATCH" {
			return rt.RoundTrip(r)
		}
		return c.watch(rt, r)
	})
}

// watch counts a watch as open from its request until its response body
// is closed (or the request fails).
func (c *RequestCounter) watch(rt http.RoundTripper, r *http.Request) (*http.Response, error) {
	p, start := r.URL.Path, time.Now()
	c.mu.Lock()
	c.open[p]++
	c.maxOpen[p] = max(c.maxOpen[p], c.open[p])
	c.mu.Unlock()
	resp, err := rt.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusOK {
		status := fmt.Sprint(err)
		if err == nil {
			status = resp.Status
		}
		c.closeWatch(p, start, status)
		return resp, err
	}
	body := &watchBody{ReadCloser: resp.Body}
	body.done = func() {
		how := "closed by the client"
		if err := body.readErr.Load(); err != nil {
			how = "ended by the server (" + (*err).Error() + ")"
		}
		c.closeWatch(p, start, how)
	}
	resp.Body = body
	return resp, nil
}

func (c *RequestCounter) closeWatch(path string, start time.Time, how string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open[path]--
	c.ended[path] = append(c.ended[path], fmt.Sprintf("%s after %s", how, time.Since(start).Round(time.Millisecond)))
}

// watchBody tells a watch the server ended (a read failed, io.EOF
// included) from one the client closed.
type watchBody struct {
	io.ReadCloser
	once sync.Once
	done func()
	// readErr is the first read error. Close may run while a read
	// blocks (a client stopping its watch), hence atomic.
	readErr atomic.Pointer[error]
}

func (b *watchBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.readErr.CompareAndSwap(nil, &err)
	}
	return n, err
}

func (b *watchBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// Reads returns how many times path was read in full or in part other
// than by a watch: LIST pages plus lists streamed as a watch's initial
// events (WATCHLIST).
func (c *RequestCounter) Reads(path string) int {
	return c.Count("LIST", path) + c.Count("WATCHLIST", path)
}

// Count returns how many requests with verb went to path (verbs: the
// HTTP method, LIST, WATCH, or WATCHLIST for a streamed list).
func (c *RequestCounter) Count(verb, path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[verb+" "+path]
}

// MaxOpenWatches returns the most watches on path that were open at the
// same time.
func (c *RequestCounter) MaxOpenWatches(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxOpen[path]
}

// EndedWatches describes how the watches on path that ended did (the
// response status or error, ended by the server, or closed by the
// client), and how long after the request.
func (c *RequestCounter) EndedWatches(path string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ended[path]...)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// verb names a request as the API server's metrics do: a GET of a
// collection is a LIST, with watch=true a WATCH.
func verb(r *http.Request) string {
	if r.Method != http.MethodGet {
		return r.Method
	}
	if q := r.URL.Query(); q.Get("watch") == "true" || q.Get("watch") == "1" {
		if q.Get("sendInitialEvents") == "true" {
			return "WATCHLIST" // a list streamed as a watch's initial events
		}
		return "WATCH"
	}
	// Collections: /api/v1/configmaps, /api/v1/namespaces/x/configmaps,
	// /apis/g/v/namespaces/x/r (an even number of segments after the
	// group version means a named object).
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	gv := 2
	if parts[0] == "apis" {
		gv = 3
	}
	if len(parts) > gv && (len(parts)-gv)%2 == 1 {
		return "LIST"
	}
	return "GET"
}

// CheckSharedWatch returns nil when the client watched path through one
// watch at a time, else an error that says how each watch ended. It is
// how a test asserts that metrics share a watch: one watch per metric
// would be open side by side, while a watch the API server ended (a
// CRD's storage rebuilt, a resource version the watch cache has not seen
// yet, reported inside the stream and closed by the client) is followed
// by the next one.
func (c *RequestCounter) CheckSharedWatch(path string) error {
	n, most, ended := c.Count("WATCH", path), c.MaxOpenWatches(path), c.EndedWatches(path)
	switch {
	case n == 0:
		return fmt.Errorf("no watch on %s", path)
	case most > 1:
		return fmt.Errorf("%d watches open at once on %s (%d in all; ended: %s)", most, path, n, strings.Join(ended, "; "))
	}
	return nil
}
