package controllers

import (
	"testing"
	"time"
)

// TestTokenRenewalSchedule walks a fake clock through a token's life: it
// is reused until 80% of its lifetime has passed, renewed from then on,
// and replaced at once when the ServiceAccount or audience changes.
func TestTokenRenewalSchedule(t *testing.T) {
	issued := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tok := &issuedToken{scope: "ns/sa\x00aud", issued: issued, expires: issued.Add(time.Hour)}
	tests := []struct {
		name  string
		cur   *issuedToken
		scope string
		at    time.Duration // after issued
		due   bool
	}{
		{"no token yet", nil, "ns/sa\x00aud", 0, true},
		{"fresh", tok, "ns/sa\x00aud", time.Minute, false},
		{"just before 80%", tok, "ns/sa\x00aud", 48*time.Minute - time.Second, false},
		{"at 80%", tok, "ns/sa\x00aud", 48 * time.Minute, true},
		{"expired", tok, "ns/sa\x00aud", 2 * time.Hour, true},
		{"other audience", tok, "ns/sa\x00other", time.Minute, true},
		{"other ServiceAccount", tok, "ns/other\x00aud", time.Minute, true},
	}
	for _, tt := range tests {
		if got := tokenDue(tt.cur, tt.scope, issued.Add(tt.at), defaultRenewFraction); got != tt.due {
			t.Errorf("%s: due %v, want %v", tt.name, got, tt.due)
		}
	}
	if got := renewAt(issued, issued.Add(10*time.Minute), 0.8); !got.Equal(issued.Add(8 * time.Minute)) {
		t.Errorf("renewAt %v", got)
	}
}
