// Package sockwait sends on a socket and then waits for it to become
// readable, without the read that Go's poller otherwise makes fail first.
//
// The poller forgets a socket's readiness when a read begins: a read begun
// after a request or an answer went out finds nothing yet (EAGAIN), and
// only then waits, one system call for nothing in every exchange. When
// what is awaited can only follow what is sent (a server's answer to the
// request; a waiting client's next request after its answer), the wait can
// begin first and the send be made from inside it (a RawConn.Read whose
// callback sends, then asks to wait): what comes after cannot be missed,
// and the read that follows finds the bytes. The upstream client and the
// h1 server both send this way.
package sockwait

import (
	"errors"
	"net"
	"syscall"
)

// Sender sends on one socket and waits; it is made once per connection
// (its callback is a method value, which would allocate at every call).
type Sender struct {
	rc   syscall.RawConn
	send func() error
	step func(uintptr) bool
	// during one SendThenWait: whether send ran, and its error.
	sent bool
	err  error
}

// New returns a Sender that sends with send on the socket rc reads.
func New(rc syscall.RawConn, send func() error) *Sender {
	s := &Sender{rc: rc, send: send}
	s.step = s.stepFn
	return s
}

// SendThenWait calls send from inside a wait for the socket to have
// something to read (or a hang-up), and returns once it has or the read
// deadline passed. sent is false when the wait could not begin (the socket
// failed, or its deadline had passed): send was not called. sendErr is
// send's error (no wait then); waitErr the wait's (a deadline's, say).
func (s *Sender) SendThenWait() (sent bool, sendErr, waitErr error) {
	s.sent, s.err = false, nil
	waitErr = s.rc.Read(s.step)
	sent, sendErr = s.sent, s.err
	s.err = nil
	return sent, sendErr, waitErr
}

// stepFn is called first to send (false: now wait), then once the socket
// is readable (true: done).
func (s *Sender) stepFn(uintptr) bool {
	if s.sent {
		return true
	}
	s.sent = true
	s.err = s.send()
	return s.err != nil
}

// IsTimeout reports whether err is a deadline's (a socket's or a
// context's): how a wait, a read or a write that ran out of time fails.
func IsTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}
