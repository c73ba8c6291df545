package turns

import (
	"slices"
	"strings"
	"testing"
)

func TestTenantsTakeTurns(t *testing.T) {
	q := New(func(s string) string { tenant, _, _ := strings.Cut(s, "/"); return tenant })
	for _, s := range []string{"a/1", "a/2", "a/3", "a/4", "b/1", "c/1", "b/2"} {
		q.Push(s)
	}
	var got []string
	for q.Len() > 0 {
		got = append(got, q.Pop())
		if len(got) == 2 {
			q.Push("d/1") // a tenant arriving later gets its turn after those waiting
		}
	}
	want := []string{"a/1", "b/1", "c/1", "a/2", "b/2", "d/1", "a/3", "a/4"}
	if !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}
