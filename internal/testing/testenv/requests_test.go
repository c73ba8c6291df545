package testenv

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRequestCounterTracksWatches: watches count as open until their body
// is closed, and a watch the server ended is told from one the client
// closed.
func TestRequestCounterTracksWatches(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("end") == "1" {
			_, _ = io.WriteString(w, "{}")
			return // the server ends this watch
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done() // this one runs until the client closes it
	}))
	defer srv.Close()
	c := NewRequestCounter()
	client := &http.Client{Transport: c.Wrap(http.DefaultTransport)}
	const path = "/api/v1/configmaps"
	get := func(query string) *http.Response {
		resp, err := client.Get(srv.URL + path + "?watch=true" + query)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	first := get("")
	second := get("")
	if n := c.MaxOpenWatches(path); n != 2 {
		t.Errorf("MaxOpenWatches = %d with two open, want 2", n)
	}
	if err := c.CheckSharedWatch(path); err == nil || !strings.Contains(err.Error(), "2 watches open at once") {
		t.Errorf("CheckSharedWatch with two open = %v, want an error", err)
	}
	_ = first.Body.Close()
	_ = second.Body.Close()

	ended := get("&end=1")
	if _, err := io.ReadAll(ended.Body); err != nil {
		t.Fatal(err)
	}
	_ = ended.Body.Close()
	got := c.EndedWatches(path)
	if len(got) != 3 || !strings.HasPrefix(got[0], "closed by the client") || !strings.HasPrefix(got[2], "ended by the server (EOF)") {
		t.Errorf("EndedWatches = %q, want two closed by the client, then one ended by the server", got)
	}
	if n := c.Count("WATCH", path); n != 3 {
		t.Errorf("Count = %d, want 3", n)
	}

	one := NewRequestCounter()
	client.Transport = one.Wrap(http.DefaultTransport)
	for range 2 {
		resp := get("&end=1")
		_, _ = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
	}
	if err := one.CheckSharedWatch(path); err != nil {
		t.Errorf("two watches one after the other: %v", err)
	}
}
