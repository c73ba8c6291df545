package access

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestFairQueueTakesTurnsPerNamespace(t *testing.T) {
	q := newFairQueue()
	s := func(ns string, i int) scope {
		return scope{serviceAccount: types.NamespacedName{Namespace: ns, Name: fmt.Sprint("sa", i)}}
	}
	for i := range 4 {
		q.push(s("a", i), false)
	}
	q.push(s("b", 0), false)
	q.push(s("c", 0), false)
	q.push(s("b", 1), false)
	if q.push(s("a", 0), true) {
		t.Error("a queued scope was queued again")
	}
	var got []string
	for {
		next, ok := q.pop()
		if !ok {
			break
		}
		got = append(got, next.scope.serviceAccount.String())
	}
	want := "a/sa0 b/sa0 c/sa0 a/sa1 b/sa1 a/sa2 a/sa3"
	if g := strings.Join(got, " "); g != want {
		t.Fatalf("order %s, want %s", g, want)
	}
	if !q.push(s("a", 0), false) {
		t.Error("a scope taken from the queue could not be queued again")
	}
}
