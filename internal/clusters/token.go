package clusters

import (
	"net/http"
	"sync/atomic"
)

// Token is a bearer token that can be replaced while requests use it.
type Token struct{ v atomic.Pointer[string] }

// Set replaces the token; requests sent from now on carry it.
func (t *Token) Set(token string) { t.v.Store(&token) }

// Get returns the current token, "" if none.
func (t *Token) Get() string {
	if p := t.v.Load(); p != nil {
		return *p
	}
	return ""
}

// bearer adds the current token to every request that carries no
// Authorization header of its own. Reading it per request is what lets a
// renewed token apply without rebuilding the transport: a watch already
// open keeps its authenticated stream, and its next request (a relist, a
// new watch) uses the new token.
type bearer struct {
	token *Token
	next  http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	tok := b.token.Get()
	if tok == "" || r.Header.Get("Authorization") != "" {
		return b.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	return b.next.RoundTrip(r)
}

// WrappedRoundTripper lets client-go's debugging wrappers see through.
func (b *bearer) WrappedRoundTripper() http.RoundTripper { return b.next }
