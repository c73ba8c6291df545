package testenv

import (
	"net/http"
	"strings"
	"sync"
)

// RequestCounter counts the API requests a client makes, by verb (LIST,
// WATCH, GET, ...) and path, so tests can assert on the load a component
// puts on the API server.
type RequestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

// NewRequestCounter returns an empty counter.
func NewRequestCounter() *RequestCounter { return &RequestCounter{counts: map[string]int{}} }

// Wrap is a rest.Config transport wrapper.
func (c *RequestCounter) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		c.mu.Lock()
		c.counts[verb(r)+" "+r.URL.Path]++
		c.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

// Count returns how many requests with verb went to path.
func (c *RequestCounter) Count(verb, path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[verb+" "+path]
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// verb names a request as the API server's metrics do: a GET of a
// collection is a LIST, with watch=true a WATCH.
func verb(r *http.Request) string {
	if r.Method != http.MethodGet {
		return r.Method
	}
	if r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1" {
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
