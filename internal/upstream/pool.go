package upstream

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/sockwait"
)

// pconn is one connection to a server.
type pconn struct {
	u         *Client
	addr      string
	c         net.Conn
	lim       *headLimit // under br: bounds the bytes a response head may take
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	reused    bool
	// req is what ReadResponse is told of the request (its method).
	req http.Request
	// w is the exchange's registration as waiting for a head, if any.
	w *backend.Waiter
	// named: addr is a host name, whose addresses may change.
	named bool
	// fastUntil is the short read deadline armed, if it is the one set.
	fastUntil time.Time
	// waiter sends requests from inside the wait for their answers
	// (sendThenWait), nil when the connection is no socket of its own;
	// sending is the request it sends.
	waiter  *sockwait.Sender
	sending *Request
}

// get returns an idle connection to addr or dials one. A connection that
// will carry a request that may not be sent twice is first checked for a
// close from the server, which a resendable request instead survives by
// being sent again.
func (u *Client) get(ctx context.Context, addr string, connect time.Duration, resendable bool, now time.Time) (*pconn, error) {
	for {
		pc := u.pop(addr, now)
		if pc == nil {
			break
		}
		if resendable || pc.alive() {
			pc.reused = true
			return pc, nil
		}
		pc.c.Close()
	}
	c, err := u.connect(ctx, addr, connect)
	if err != nil {
		return nil, err
	}
	rw := sockwait.IO(c)
	lim := &headLimit{c: rw, left: unlimited}
	pc := &pconn{u: u, addr: addr, named: isName(addr), c: c, lim: lim, br: bufio.NewReaderSize(lim, 4096), bw: bufio.NewWriterSize(rw, 4096)}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			pc.waiter = sockwait.New(rc, func() error { return pc.sending.Write(pc.bw) })
		}
	}
	return pc, nil
}

// connect dials addr, bounded by timeout.
func (u *Client) connect(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return u.dial(dctx, addr)
}

func (u *Client) pop(addr string, now time.Time) *pconn {
	u.mu.Lock()
	defer u.mu.Unlock()
	list := u.idle[addr]
	for len(list) > 0 {
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		u.idle[addr] = list
		if now.Sub(pc.idleSince) < u.idleTimeout {
			return pc
		}
		go pc.c.Close()
	}
	return nil
}

// drainStale closes the idle connections to addr whose address its name
// no longer has (a DNS change).
func (u *Client) drainStale(addr string, current []netip.Addr) {
	u.mu.Lock()
	var keep, stale []*pconn
	for _, pc := range u.idle[addr] {
		if slices.Contains(current, remoteIP(pc.c)) {
			keep = append(keep, pc)
		} else {
			stale = append(stale, pc)
		}
	}
	u.idle[addr] = keep
	u.mu.Unlock()
	for _, pc := range stale {
		pc.c.Close()
	}
}

func (u *Client) put(pc *pconn) {
	now := time.Now()
	if pc.named {
		u.names.touch(pc.addr, now, u.drainStale)
		if !u.names.current(pc.addr, pc.c) {
			pc.c.Close() // its name moved to another address meanwhile
			return
		}
	}
	pc.idleSince = now
	u.mu.Lock()
	defer u.mu.Unlock()
	list := u.idle[pc.addr]
	// The oldest connections sink to the bottom of the stack: expire them there.
	for len(list) > 0 && (len(list) >= u.maxIdle || now.Sub(list[0].idleSince) > u.idleTimeout) {
		go list[0].c.Close()
		list = list[1:]
	}
	u.idle[pc.addr] = append(list, pc)
}

// alive reports whether an idle connection is still open: a peek that
// would block means nothing arrived, not even the server's close. (A read
// under a deadline in the past does not reach the socket at all.)
func (pc *pconn) alive() bool {
	if pc.br.Buffered() > 0 {
		return false // an answer to no request
	}
	sc, ok := pc.c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	err = rc.Control(func(fd uintptr) {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = err == syscall.EAGAIN
	})
	return err == nil && open
}

// CloseIdle closes every idle connection (after a reload).
func (u *Client) CloseIdle() {
	u.mu.Lock()
	all := u.idle
	u.idle = map[string][]*pconn{}
	u.mu.Unlock()
	for _, list := range all {
		for _, pc := range list {
			pc.c.Close()
		}
	}
}
