package remotelimit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/remotelimit"
)

// client is an HTTP client whose transport l wraps.
func client(l remotelimit.Limits) *http.Client {
	return &http.Client{Transport: remotelimit.Wrap(l)(http.DefaultTransport.(*http.Transport).Clone())}
}

// get reads the whole answer to url with the reporting context and
// returns what it read, the error, and what OnExceeded was called with.
func get(t *testing.T, c *http.Client, url string) (int, []*remotelimit.Error, error) {
	t.Helper()
	var reported []*remotelimit.Error
	ctx := remotelimit.OnExceeded(t.Context(), func(e *remotelimit.Error) { reported = append(reported, e) })
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, reported, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	return len(data), reported, err
}

// serve answers every request with body, chunked unless length is set.
func serve(t *testing.T, body []byte, length bool) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if length {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		}
		for rest := body; len(rest) > 0; {
			n := min(len(rest), 4096)
			if _, err := w.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestResponseBound reads responses of several sizes, with and without a
// Content-Length, through a limit of 10,000 bytes: up to the limit they
// are read whole, beyond it the read fails with a ResponseTooLarge
// *Error naming the cluster, after at most the limit, and the context's
// OnExceeded hears of it once. A watch is bounded per line instead.
func TestResponseBound(t *testing.T) {
	const limit = 10000
	line := append(bytes.Repeat([]byte("x"), 999), '\n')
	for _, c := range []struct {
		name   string
		path   string
		body   []byte
		length bool
		limit  int64
		over   bool
	}{
		{"at the limit", "/api/v1/configmaps", bytes.Repeat([]byte("x"), limit), false, limit, false},
		{"one byte over", "/api/v1/configmaps", bytes.Repeat([]byte("x"), limit+1), false, limit, true},
		{"far over", "/api/v1/configmaps", bytes.Repeat([]byte("x"), 50*limit), false, limit, true},
		{"far over, with a length", "/api/v1/configmaps", bytes.Repeat([]byte("x"), 50*limit), true, limit, true},
		{"no bound", "/api/v1/configmaps", bytes.Repeat([]byte("x"), 50*limit), true, -1, false},
		{"many lines are no event over it", "/api/v1/configmaps?watch=true", bytes.Repeat(line, 50), false, limit, false},
		{"one line over it is", "/api/v1/configmaps?watch=true",
			append(bytes.Repeat(line, 5), bytes.Repeat([]byte("x"), limit+1)...), false, limit, true},
		{"a watch is bounded with no limit too", "/api/v1/watch/configmaps",
			bytes.Repeat([]byte("x"), remotelimit.MaxWatchEventBytes+1), false, -1, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			url := serve(t, c.body, c.length)
			n, reported, err := get(t, client(remotelimit.Limits{MaxResponseBytes: c.limit, Source: "the RemoteClusterAccess a/b"}),
				url+c.path)
			if !c.over {
				if err != nil || n != len(c.body) {
					t.Fatalf("read %d of %d bytes, error %v; want all", n, len(c.body), err)
				}
				if len(reported) != 0 {
					t.Errorf("OnExceeded heard of %v", reported)
				}
				return
			}
			tl := remotelimit.As(err)
			if tl == nil {
				t.Fatalf("read %d bytes, error %v; want a *remotelimit.Error", n, err)
			}
			if reason.Of(err, "") != v1alpha1.ReasonResponseTooLarge {
				t.Errorf("reason %q, want ResponseTooLarge", reason.Of(err, ""))
			}
			for _, want := range []string{"RemoteClusterAccess a/b", "--max-remote-response-bytes", fmt.Sprint(tl.Limit)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the message does not name %q: %s", want, err)
				}
			}
			if !tl.Event && int64(n) > tl.Limit {
				t.Errorf("%d bytes were read before the error, more than the limit %d", n, tl.Limit)
			}
			if len(reported) != 1 || reported[0] != tl {
				t.Errorf("OnExceeded heard of %v, want the error once", reported)
			}
		})
	}
}

// hang is a server that accepts every request and answers none until the
// client gives up; it counts the requests it saw ended.
func hang(t *testing.T, headers bool, trickle time.Duration) (url string, ended *atomic.Int32) {
	t.Helper()
	ended = &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer ended.Add(1)
		if headers {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
		}
		for {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(max(trickle, 10*time.Millisecond)):
				if trickle > 0 {
					_, _ = w.Write([]byte("x"))
					w.(http.Flusher).Flush()
				}
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, ended
}

// TestTimeBound: a server that never answers a watch frees it after
// WatchHeaderTimeout, with an error client-go does not retry at once; one
// that trickles a LIST's bytes is given up after RequestTimeout; a watch
// that is answered and then sends nothing ends WatchGrace after the
// timeoutSeconds it asked for.
func TestTimeBound(t *testing.T) {
	l := remotelimit.Limits{MaxResponseBytes: 1 << 20, RequestTimeout: 500 * time.Millisecond,
		WatchHeaderTimeout: 300 * time.Millisecond, WatchGrace: 200 * time.Millisecond}
	for _, c := range []struct {
		name    string
		headers bool
		trickle time.Duration
		path    string
		want    time.Duration
	}{
		{"a watch never answered", false, 0, "/api/v1/configmaps?watch=true&timeoutSeconds=600", l.WatchHeaderTimeout},
		{"a list trickled", true, 20 * time.Millisecond, "/api/v1/configmaps?limit=500", l.RequestTimeout},
		{"a list never answered", false, 0, "/api/v1/configmaps", l.RequestTimeout},
		{"a silent watch", true, 0, "/api/v1/configmaps?watch=true&timeoutSeconds=1", time.Second + l.WatchGrace},
	} {
		t.Run(c.name, func(t *testing.T) {
			url, ended := hang(t, c.headers, c.trickle)
			start := time.Now()
			_, _, err := get(t, client(l), url+c.path)
			took := time.Since(start)
			if err == nil {
				t.Fatal("the request succeeded")
			}
			t.Logf("given up after %s: %v", took.Round(time.Millisecond), err)
			// Generous: the machine is shared.
			if took < c.want-50*time.Millisecond || took > c.want+5*time.Second {
				t.Errorf("given up after %s, want about %s", took, c.want)
			}
			if !c.headers && strings.Contains(c.path, "watch=true") {
				var na *remotelimit.NoAnswerError
				var ne net.Error
				if !errors.As(err, &na) {
					t.Errorf("error %v, want a NoAnswerError", err)
				}
				if errors.As(err, &ne) && ne.Timeout() {
					t.Errorf("error %v is a timeout, which client-go retries", err)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for ended.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if ended.Load() == 0 {
				t.Error("the server's request was not ended: the connection is still held")
			}
		})
	}
}

// TestRetryAfterIsShortened: a Retry-After of an hour reaches client-go
// as one second; one second stays.
func TestRetryAfterIsShortened(t *testing.T) {
	for _, c := range []struct{ sent, want string }{{"3600", "1"}, {"1", "1"}, {"", ""}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if c.sent != "" {
				w.Header().Set("Retry-After", c.sent)
			}
			w.WriteHeader(http.StatusTooManyRequests)
		}))
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+"/api", nil)
		resp, err := client(remotelimit.Limits{}).Do(req)
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if got := resp.Header.Get("Retry-After"); got != c.want {
			t.Errorf("Retry-After %q reached the client as %q, want %q", c.sent, got, c.want)
		}
	}
}
