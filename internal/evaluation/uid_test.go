package evaluation

import (
	"strings"
	"testing"
)

// TestUIDIsBounded: the key an object is held by is its UID (or
// namespace/name) as long as a real one can be, and a digest of fixed
// length beyond, so a remote API server cannot make the operator keep
// megabytes per object through its UIDs; distinct long keys stay
// distinct.
func TestUIDIsBounded(t *testing.T) {
	obj := func(uid, ns, name string) map[string]any {
		return map[string]any{"metadata": map[string]any{"uid": uid, "namespace": ns, "name": name}}
	}
	realUID := "6f1c2b9e-3d0a-4c1e-9b7a-2f4e8d6c1a00"
	long := strings.Repeat("u", 1<<20)
	name253 := strings.Repeat("n", 253)
	for _, tc := range []struct {
		name string
		obj  map[string]any
		want string // "" when a digest is expected
	}{
		{"a real UID", obj(realUID, "ns", "a"), realUID},
		{"no UID", obj("", "ns", "a"), "ns/a"},
		{"the longest namespace and name", obj("", strings.Repeat("s", 63), name253), strings.Repeat("s", 63) + "/" + name253},
		{"a UID of maxKeyBytes", obj(strings.Repeat("u", maxKeyBytes), "ns", "a"), strings.Repeat("u", maxKeyBytes)},
		{"a UID of a MiB", obj(long, "ns", "a"), ""},
		{"a name of a MiB", obj("", "ns", long), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := UID(tc.obj)
			if tc.want != "" {
				if got != tc.want {
					t.Errorf("UID = %.40q, want %.40q", got, tc.want)
				}
				return
			}
			if len(got) != len("sha256:")+64 || !strings.HasPrefix(got, "sha256:") {
				t.Errorf("UID = %.80q (%d bytes), want a sha256 digest", got, len(got))
			}
			if got != UID(tc.obj) {
				t.Error("the digest differs between calls")
			}
		})
	}
	if a, b := UID(obj(long+"a", "", "")), UID(obj(long+"b", "", "")); a == b {
		t.Errorf("two long UIDs share the key %s", a)
	}
}
