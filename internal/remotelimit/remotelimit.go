package remotelimit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

const (
	// DefaultMaxResponseBytes is the operator's default
	// --max-remote-response-bytes: a few LIST pages of large objects (a
	// page of 1,000 objects of 32 KiB; of 1,000 Pods, about a third of
	// it), and far above any discovery document. Reading a response
	// costs client-go up to about two and a half times its size at once
	// (io.ReadAll's growing buffer), so the bound is no larger.
	DefaultMaxResponseBytes = 32 << 20
	// MaxWatchEventBytes bounds one watch event whatever the limit: the
	// bound client-go's decoder applies to protobuf frames, and ten times
	// the largest object etcd stores by default.
	MaxWatchEventBytes = 16 << 20

	// DefaultRequestTimeout is Limits.RequestTimeout's default: a LIST
	// page at the default byte limit over a link of about 0.5 MiB/s.
	DefaultRequestTimeout = time.Minute
	// DefaultWatchHeaderTimeout is Limits.WatchHeaderTimeout's default.
	// An API server answers a watch at once, a streamed list included,
	// and sends the objects after the headers.
	DefaultWatchHeaderTimeout = 30 * time.Second
	// DefaultWatchGrace is Limits.WatchGrace's default.
	DefaultWatchGrace = time.Minute

	// watchWithoutTimeout is how long a watch that asked for no
	// timeoutSeconds may last (before WatchGrace): the longest the
	// Reflector asks for.
	watchWithoutTimeout = 10 * time.Minute
	// maxRetryAfter is the longest Retry-After passed on to client-go.
	maxRetryAfter = 1
)

// Limits bounds the requests to one cluster.
type Limits struct {
	// MaxResponseBytes bounds a response that is not a watch, and one
	// watch event together with MaxWatchEventBytes; <= 0: no bound on
	// bytes (the time bounds still hold).
	MaxResponseBytes int64
	// Source names the cluster in errors ("the RemoteClusterAccess
	// team-a/blue").
	Source string
	// RequestTimeout, WatchHeaderTimeout and WatchGrace are the time
	// bounds (see the package doc); zero: their defaults.
	RequestTimeout, WatchHeaderTimeout, WatchGrace time.Duration
}

// Error is a response or watch event over its limit. Its message names
// the cluster, the limit and the flag that sets it, never what was sent.
type Error struct {
	// Source names the cluster (Limits.Source).
	Source string
	// Limit is the bound exceeded, in bytes.
	Limit int64
	// Event is true for one watch event, false for a whole response.
	Event bool
}

// Error names the cluster, the limit and the flag.
func (e *Error) Error() string {
	if e.Event {
		return fmt.Sprintf("the API server of %s sent a watch event larger than %d bytes, the most the operator reads "+
			"(its --max-remote-response-bytes, and never more than %d for one event)", e.Source, e.Limit, MaxWatchEventBytes)
	}
	return fmt.Sprintf("the API server of %s sent a response (a LIST page, a GET or discovery) larger than %d bytes, "+
		"the limit set by the operator's --max-remote-response-bytes", e.Source, e.Limit)
}

// ConditionReason is ResponseTooLarge.
func (e *Error) ConditionReason() string { return v1alpha1.ReasonResponseTooLarge }

// As returns the *Error in err's chain, nil if there is none.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// NoAnswerError is a watch whose response headers did not come within
// Limits.WatchHeaderTimeout. It is deliberately no net.Error with
// Timeout(): client-go would retry such a watch ten times in a row.
type NoAnswerError struct{ After time.Duration }

// Error says how long the watch waited.
func (e *NoAnswerError) Error() string {
	return fmt.Sprintf("the API server did not answer a watch request within %s", e.After)
}

type reportKey struct{}

// OnExceeded returns a context whose requests, when a response to one of
// them goes over its limit, call f with the error, once, from the
// goroutine reading the response.
func OnExceeded(ctx context.Context, f func(*Error)) context.Context {
	return context.WithValue(ctx, reportKey{}, f)
}

// Wrap returns the transport wrapper that applies l (for
// rest.Config.Wrap).
func Wrap(l Limits) func(http.RoundTripper) http.RoundTripper {
	if l.RequestTimeout <= 0 {
		l.RequestTimeout = DefaultRequestTimeout
	}
	if l.WatchHeaderTimeout <= 0 {
		l.WatchHeaderTimeout = DefaultWatchHeaderTimeout
	}
	if l.WatchGrace <= 0 {
		l.WatchGrace = DefaultWatchGrace
	}
	return func(next http.RoundTripper) http.RoundTripper { return &transport{l: l, next: next} }
}

type transport struct {
	l    Limits
	next http.RoundTripper
}

// RoundTrip sends r within the time bounds and counts what is read of
// the answer.
func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	watching := isWatch(r.URL)
	limit, within := t.l.MaxResponseBytes, t.l.RequestTimeout
	if watching {
		if limit <= 0 || limit > MaxWatchEventBytes {
			limit = MaxWatchEventBytes
		}
		within = watchDuration(r.URL) + t.l.WatchGrace
	}
	ctx, cancel := context.WithTimeout(r.Context(), within)
	var headers *time.Timer
	if watching {
		headers = time.AfterFunc(t.l.WatchHeaderTimeout, cancel)
	}
	resp, err := t.next.RoundTrip(r.WithContext(ctx))
	if headers != nil && !headers.Stop() {
		// Cancelled for want of an answer, or answered as it fired.
		if err == nil {
			_ = resp.Body.Close()
		}
		cancel()
		return nil, &NoAnswerError{After: t.l.WatchHeaderTimeout}
	}
	if err != nil {
		cancel()
		return nil, err
	}
	if h := resp.Header.Get("Retry-After"); h != "" {
		if s, err := strconv.Atoi(h); err == nil && s > maxRetryAfter {
			resp.Header.Set("Retry-After", strconv.Itoa(maxRetryAfter))
		}
	}
	b := &body{rc: resp.Body, cancel: cancel, limit: limit, watch: watching,
		err: &Error{Source: t.l.Source, Limit: limit, Event: watching}}
	b.report, _ = r.Context().Value(reportKey{}).(func(*Error))
	if limit <= 0 {
		b.limit = 0
	} else if !watching && resp.ContentLength > limit {
		b.over = true
	}
	resp.Body = b
	return resp, nil
}

// isWatch reports whether a request opens a watch.
func isWatch(u *url.URL) bool {
	if w := u.Query().Get("watch"); w == "true" || w == "1" {
		return true
	}
	return strings.Contains(u.Path, "/watch/")
}

// watchDuration is the timeoutSeconds a watch asked for, or
// watchWithoutTimeout.
func watchDuration(u *url.URL) time.Duration {
	if s, err := strconv.Atoi(u.Query().Get("timeoutSeconds")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return watchWithoutTimeout
}

// body counts what is read of a response and fails the read that goes
// over the limit. Not safe for concurrent reads, as no body is.
type body struct {
	rc     io.ReadCloser
	cancel context.CancelFunc
	// limit is the most bytes of the response, or of one watch event;
	// zero: no bound.
	limit int64
	watch bool
	// n is what was read so far, or, of a watch, since the last newline.
	n int64
	// over: the response's Content-Length is over the limit already.
	over     bool
	err      *Error
	exceeded bool
	report   func(*Error)
}

func (b *body) Read(p []byte) (int, error) {
	if b.exceeded {
		return 0, b.err
	}
	if b.limit == 0 {
		return b.rc.Read(p)
	}
	if b.over {
		return 0, b.exceed()
	}
	if !b.watch && int64(len(p)) > b.limit-b.n+1 {
		// One byte past the limit is enough to know.
		p = p[:b.limit-b.n+1]
	}
	n, err := b.rc.Read(p)
	if b.count(p[:n]) {
		return 0, b.exceed()
	}
	return n, err
}

// count adds p to what was read and reports whether that is over the
// limit.
func (b *body) count(p []byte) bool {
	if !b.watch {
		b.n += int64(len(p))
		return b.n > b.limit
	}
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			b.n += int64(len(p))
			return b.n > b.limit
		}
		if b.n+int64(i) > b.limit {
			return true
		}
		b.n, p = 0, p[i+1:]
	}
}

// exceed stops the transfer and reports the error, once.
func (b *body) exceed() error {
	b.exceeded = true
	b.cancel()
	if b.report != nil {
		b.report(b.err)
	}
	return b.err
}

func (b *body) Close() error {
	err := b.rc.Close()
	b.cancel()
	return err
}
