package informers

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// refused is the error a dial to a stopped API server returns.
var refused = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}

func TestRelistDelays(t *testing.T) {
	type step struct {
		healthy bool
		err     error
		// the base delay; the jitter adds up to half of it
		want time.Duration
	}
	failing := errors.New("watch ended")
	tests := []struct {
		name  string
		steps []step
	}{
		{"a failure streak doubles up to the cap", []step{
			{false, failing, 500 * time.Millisecond}, {false, failing, time.Second}, {false, failing, 2 * time.Second},
			{false, failing, 4 * time.Second}, {false, failing, 8 * time.Second}, {false, failing, 16 * time.Second},
			{false, failing, 20 * time.Second}, {false, failing, 20 * time.Second},
		}},
		{"a healthy watch starts over, however many expiries came before", []step{
			{false, nil, 500 * time.Millisecond}, {false, nil, time.Second}, {false, nil, 2 * time.Second},
			{false, nil, 4 * time.Second}, {false, nil, 8 * time.Second},
			{true, nil, 500 * time.Millisecond}, {true, nil, 500 * time.Millisecond}, {true, nil, 500 * time.Millisecond},
			{false, nil, time.Second},
		}},
		{"an unreachable API server is retried every couple of seconds", []step{
			{false, refused, 500 * time.Millisecond}, {false, refused, time.Second}, {false, refused, 2 * time.Second},
			{false, refused, 2 * time.Second}, {false, refused, 2 * time.Second}, {false, refused, 2 * time.Second},
			{false, failing, 20 * time.Second}, // the server answers but fails: the streak went on
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newRelistDelays()
			for n, s := range tt.steps {
				got := d.next(s.healthy, s.err)
				if got < s.want || got > s.want*3/2 {
					t.Errorf("step %d: delay %s, want %s to %s", n, got, s.want, s.want*3/2)
				}
			}
		})
	}
}

func TestRefusedIsRecognised(t *testing.T) {
	// The Reflector's and the API machinery's check must see through the
	// wrapping a client adds.
	wrapped := fmt.Errorf("listing: %w", refused)
	d := newRelistDelays()
	for range 6 {
		d.next(false, nil)
	}
	if got := d.next(false, wrapped); got > rewatchBackoff.Cap*5/4 {
		t.Fatalf("a wrapped connection refused waited %s", got)
	}
}
