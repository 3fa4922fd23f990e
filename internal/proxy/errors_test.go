package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/servertest"
)

func TestLogLimiter(t *testing.T) {
	var l logLimiter
	t0 := time.Unix(1000, 0)
	written := 0
	for i := range 100 {
		if _, ok := l.allow(t0.Add(time.Duration(i) * time.Millisecond)); ok {
			written++
		}
	}
	if written != perSecond {
		t.Errorf("%d lines written in one second, want %d", written, perSecond)
	}
	n, ok := l.allow(t0.Add(time.Second))
	if !ok || n != 100-perSecond {
		t.Errorf("next second: ok=%v suppressed=%d, want the %d suppressed lines counted", ok, n, 100-perSecond)
	}
}

// TestReason: errors as the sockets give them are named by what they
// are (errors.Is on the syscall errors, not the text).
func TestReason(t *testing.T) {
	_, refused := net.Dial("tcp", servertest.ClosedAddr(t))
	a, b := tcpPair(t)
	servertest.Reset(b)
	a.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, resetErr := a.Read(make([]byte, 1))
	c, d := tcpPair(t)
	d.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, eof := c.Read(make([]byte, 1))
	e, _ := tcpPair(t)
	e.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, timeout := e.Read(make([]byte, 1))
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"refused", &dialError{err: refused}, "connection refused"},
		{"reset", fmt.Errorf("%w: %w", errStale, resetErr), "connection reset"},
		{"closed", eof, "connection closed"},
		{"cut short", fmt.Errorf("reading the head: %w", io.ErrUnexpectedEOF), "connection closed"},
		{"socket timeout", timeout, "timeout"},
		{"gateway's timeout", errNoTimeLeft, "timeout"},
		{"dial timeout", &dialError{err: fmt.Errorf("dial: %w", context.DeadlineExceeded)}, "timeout"},
		{"out of fds", &dialError{err: &net.OpError{Op: "dial", Err: syscall.EMFILE}}, "local: connect: dial: too many open files"},
		{"other", errors.New("malformed HTTP response"), "malformed HTTP response"},
		// The words alone do not make the reason.
		{"text only", errors.New("upstream said: connection refused, EOF"), "upstream said: connection refused, EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("the socket gave no error")
			}
			if got := reason(tt.err); got != tt.want {
				t.Errorf("reason(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}
