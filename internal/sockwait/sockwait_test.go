package sockwait

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (near, far net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	near, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	far, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { near.Close(); far.Close() })
	return near, far
}

func rawOf(t *testing.T, c net.Conn) syscall.RawConn {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// TestSendThenWait, on a real socket: the send happens, the wait ends when
// the peer's answer (sent only after it read ours, a while later) is there
// to read, and again on the same Sender; a deadline ends a wait with
// nothing to read; a failed send is reported and not waited on; a wait
// that cannot begin does not send.
func TestSendThenWait(t *testing.T) {
	near, far := pair(t)
	go func() {
		b := make([]byte, 4)
		for {
			if _, err := io.ReadFull(far, b); err != nil {
				return
			}
			if string(b) == "ping" {
				time.Sleep(20 * time.Millisecond)
				far.Write([]byte("pong"))
			}
		}
	}()
	msg := "ping"
	s := New(rawOf(t, near), func() error { _, err := near.Write([]byte(msg)); return err })
	near.SetReadDeadline(time.Now().Add(2 * time.Second))
	for i := range 2 {
		start := time.Now()
		sent, sendErr, waitErr := s.SendThenWait()
		if !sent || sendErr != nil || waitErr != nil {
			t.Fatalf("exchange %d: sent %v, %v, %v", i, sent, sendErr, waitErr)
		}
		if took := time.Since(start); took < 15*time.Millisecond {
			t.Errorf("exchange %d: the wait ended after %v, before the answer was sent", i, took)
		}
		b := make([]byte, 4)
		if _, err := io.ReadFull(near, b); err != nil || string(b) != "pong" {
			t.Fatalf("exchange %d: read %q, %v", i, b, err)
		}
	}

	msg = "quiet" // the peer does not answer
	near.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if sent, sendErr, waitErr := s.SendThenWait(); !sent || sendErr != nil || !IsTimeout(waitErr) {
		t.Errorf("no answer: sent %v, %v, %v; want a deadline's error", sent, sendErr, waitErr)
	}

	failed := errors.New("send failed")
	calls := 0
	f := New(rawOf(t, near), func() error { calls++; return failed })
	near.SetReadDeadline(time.Now().Add(time.Second))
	if sent, sendErr, waitErr := f.SendThenWait(); !sent || !errors.Is(sendErr, failed) || waitErr != nil {
		t.Errorf("a failed send: sent %v, %v, %v", sent, sendErr, waitErr)
	}
	near.SetReadDeadline(time.Unix(1, 0))
	if sent, _, waitErr := f.SendThenWait(); sent || !IsTimeout(waitErr) || calls != 1 {
		t.Errorf("a wait past its deadline: sent %v (calls %d), %v; want no send and the deadline's error", sent, calls, waitErr)
	}
}
