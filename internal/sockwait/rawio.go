package sockwait

import (
	"io"
	"net"
	"os"
	"syscall"
)

// IO returns what reads and writes c: for a socket (a net.Conn that is a
// syscall.Conn, as TCP connections and the gateway's wrapping of them
// are), its descriptor with raw system calls, Go's poller still waiting
// and keeping deadlines and Close; for anything else (TLS, net.Pipe in a
// test), c itself.
//
// Why: net.Conn's reads and writes enter the scheduler's syscall state. A
// socket is non-blocking, so its read or write never waits in the kernel,
// but on a loopback write the kernel runs the receiver's TCP stack and it
// may take long enough for the scheduler's monitor to take the P away
// (and start a thread for it), and entering a syscall wakes the monitor
// whenever it slept for lack of work. Under load that was a futex call
// and a thread switch every few requests, and most of the monitor's
// wake-ups (measured: 0.10 futex and 0.15 nanosleep per proxied request,
// HAProxy none). A raw system call keeps the P, as the poller's own
// epoll_wait(0) does.
//
// One goroutine reads at a time and one writes at a time, as with a
// bufio.Reader and Writer over it.
func IO(c net.Conn) io.ReadWriter {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawIO{c: c, rc: rc}
	r.readFn, r.writeFn = r.readStep, r.writeStep
	return r
}

type rawIO struct {
	c  net.Conn
	rc syscall.RawConn
	// The steps are method values made once (one would allocate at each
	// call); the state of the call in progress is kept here.
	readFn, writeFn func(uintptr) bool
	rp, wp          []byte
	rn, wn          int
	rerr, werr      syscall.Errno
}

func (r *rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.rp, r.rn, r.rerr = p, 0, 0
	err := r.rc.Read(r.readFn)
	n, errno := r.rn, r.rerr
	r.rp = nil
	switch {
	case err != nil:
		return 0, err // the poller's: closed, or a deadline's
	case errno != 0:
		return 0, r.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (r *rawIO) readStep(fd uintptr) bool {
	for {
		n, e := sysRead(fd, r.rp)
		switch e {
		case 0:
			r.rn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait until readable
		default:
			r.rerr = e
			return true
		}
	}
}

func (r *rawIO) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.wp, r.wn, r.werr = p, 0, 0
	err := r.rc.Write(r.writeFn)
	n, errno := r.wn, r.werr
	r.wp = nil
	switch {
	case errno != 0:
		return n, r.opError("write", errno)
	case err != nil:
		return n, err
	}
	return n, nil
}

// writeStep writes all of wp, waiting for room when the socket has none.
func (r *rawIO) writeStep(fd uintptr) bool {
	for r.wn < len(r.wp) {
		rest := r.wp[r.wn:]
		if len(rest) > maxWrite {
			rest = rest[:maxWrite]
		}
		n, e := sysWrite(fd, rest)
		switch e {
		case 0:
			r.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // wait until writable
		default:
			r.werr = e
			return true
		}
	}
	return true
}

// maxWrite bounds one write system call: the P stays with the goroutine
// while the kernel copies (and runs the receiver's side on loopback), so a
// large body goes in pieces that each take microseconds.
const maxWrite = 128 << 10

// opError wraps errno as net's own reads and writes do, so callers see
// the same errors (ECONNRESET, EPIPE...) either way.
func (r *rawIO) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: r.c.LocalAddr(), Addr: r.c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// Conn is c reading and writing as IO does, for what takes a net.Conn
// rather than a reader and a writer (crypto/tls over the client's
// socket). What else asks c (deadlines, Close, addresses) is c's, and it
// still reaches the socket (SyscallConn, CloseWrite).
func Conn(c net.Conn) net.Conn {
	rw := IO(c)
	if rw == io.ReadWriter(c) {
		return c
	}
	return &conn{Conn: c, rw: rw}
}

type conn struct {
	net.Conn
	rw io.ReadWriter
}

func (c *conn) Read(p []byte) (int, error)  { return c.rw.Read(p) }
func (c *conn) Write(p []byte) (int, error) { return c.rw.Write(p) }

func (c *conn) SyscallConn() (syscall.RawConn, error) { return c.Conn.(syscall.Conn).SyscallConn() }

func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
