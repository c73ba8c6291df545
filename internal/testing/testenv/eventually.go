package testenv

import (
	"net"
	"testing"
	"time"
)

// Eventually polls check until it returns nil or timeout passes, then
// fails t with the last error. Controllers converge asynchronously; a test
// states the end state it waits for, never a sleep.
func Eventually(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reached within %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for servers that cannot report the port they bound.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
