// Package upstream is tandem's HTTP/1.1 client towards the servers,
// written for a proxy: one exchange runs wholly in the caller's goroutine,
// idle connections are pooled per server and reused last in first out, a
// timeout is a socket deadline, a response head is bounded, and an
// exchange waiting for its head registers with its server, which can
// abandon it (backend.Server.Abandon). Whether a failed try is sent again
// is the caller's rule; the client says what failed (ErrStale, ErrTimeout,
// ErrAbandoned, ErrUnsent).
package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tandemproxy/tandem/internal/bufpool"
	"github.com/tandemproxy/tandem/internal/sockwait"
)

// Client is the HTTP/1.1 client towards the servers. One exchange runs
// wholly in the caller's goroutine (net/http's Transport hands each
// request to a writer and a reader goroutine per connection, three
// wake-ups a request), idle connections are reused last in first out, and
// a timeout is a socket deadline rather than a timer.
type Client struct {
	dial        func(ctx context.Context, addr string) (net.Conn, error)
	maxIdle     int           // idle connections kept per server
	idleTimeout time.Duration // an idle connection older than this is closed, not reused

	mu   sync.Mutex
	idle map[string][]*pconn
	// names follows servers named by host name: connections to an
	// address the name lost are not reused.
	names *names
}

// Bounds on what a server may send before its real response head, as
// net/http's Transport has (MaxResponseHeaderBytes; it once had a limit
// of 5 on 1xx answers too): an endless head or endless 100-continues cost
// a bounded amount of memory and time, end the exchange and count against
// the server. The net/http engine's Transport is held to the same.
const (
	MaxResponseHead  = 1 << 20
	MaxInformational = 5
)

// The pool's bounds, which the net/http engine's Transport is given too:
// idle connections kept per server, and how long one stays reusable.
const (
	MaxIdlePerServer = 256
	IdleTimeout      = 30 * time.Second
)

var (
	// ErrHeadTooLarge: the response head is larger than MaxResponseHead.
	ErrHeadTooLarge = fmt.Errorf("server's response head is larger than %d bytes", MaxResponseHead)
	// ErrTooManyInformational: more than MaxInformational 1xx answers came
	// before the real one.
	ErrTooManyInformational = fmt.Errorf("server sent more than %d informational (1xx) responses", MaxInformational)
)

// headLimit is the connection as br reads it: while a response head is
// read, at most left bytes come through.
type headLimit struct {
	c    io.Reader
	left int64
}

func (l *headLimit) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, ErrHeadTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.c.Read(p)
	l.left -= int64(n)
	return n, err
}

// unlimited is headLimit's bound while a body streams.
const unlimited = math.MaxInt64

// aLongTimeAgo is a deadline in the past, to interrupt a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// FastAnswer is how long after its try began a bodiless request waits for
// its answer before the client's context is watched and the try registers
// as waiting on its server (to be abandoned if the server goes down or
// loses the active role): most answers come sooner.
const FastAnswer = 20 * time.Millisecond

// isTimeout reports whether err is a socket's (or a context's) timeout.
var isTimeout = sockwait.IsTimeout

// What made an exchange fail, when it is more than the socket's error.
var (
	// ErrTimeout: the server did not answer before the deadline.
	ErrTimeout = errors.New("server did not answer in time")
	// ErrStale: a reused connection had been closed by the server before
	// any of an answer came (the request may have reached it, or not).
	ErrStale = errors.New("kept-alive connection was closed by the server")
	// ErrAbandoned: the exchange was waiting for a response head when its
	// server was marked down or lost the active role.
	ErrAbandoned = errors.New("abandoned: the server was marked down or lost the active role")
	// ErrUnsent: the same, found before the request was sent.
	ErrUnsent = errors.New("the server was marked down or lost the active role before the request was sent")
)

// New returns a client that connects with dial (how to dial, and how to
// mark its failures, is the caller's).
func New(dial func(ctx context.Context, addr string) (net.Conn, error)) *Client {
	return &Client{dial: dial, maxIdle: MaxIdlePerServer, idleTimeout: IdleTimeout, idle: map[string][]*pconn{}, names: newNames()}
}

// RoundTrip sends wr to addr and reads the response headers before
// headerDeadline. The response body streams from the connection, which
// goes back to the pool when the body was read to its end and closed. now
// is the time the try started. A kept-alive connection that the server
// had closed fails with ErrStale: whether to send again is the caller's
// rule (a request that may not be sent again goes on a connection checked
// first: wr.Resendable).
func (u *Client) RoundTrip(wr *Request, addr string, now, headerDeadline time.Time) (*http.Response, error) {
	pc, err := u.get(wr.Ctx, addr, wr.Connect, wr.Resendable, now)
	if err != nil {
		return nil, err
	}
	resp, err := pc.exchange(wr, now, headerDeadline)
	if err != nil {
		pc.c.Close()
		if wr.Ctx.Err() != nil {
			return nil, wr.Ctx.Err()
		}
		return nil, err
	}
	return resp, nil
}

// Upgrade sends wr, a request to switch protocols, on a new connection to
// addr (never a pooled one: the connection is the caller's after a 101)
// and reads the answer as RoundTrip does. The Body of a 101 answer is an
// *Upgraded: the connection and what was read of it. Any other answer's
// body closes the connection when closed.
func (u *Client) Upgrade(wr *Request, addr string, now, headerDeadline time.Time) (*http.Response, error) {
	c, err := u.connect(wr.Ctx, addr, wr.Connect)
	if err != nil {
		return nil, err
	}
	lim := &headLimit{c: c, left: unlimited}
	// Through pooled buffers: the relay gives the reader back when idle.
	pc := &pconn{u: u, addr: addr, c: c, lim: lim, br: bufpool.Reader(lim), bw: bufpool.Writer(c)}
	resp, err := pc.exchange(wr, now, headerDeadline)
	bufpool.PutWriter(pc.bw)
	pc.bw = nil
	if err != nil {
		c.Close()
		bufpool.PutReader(pc.br)
		if wr.Ctx.Err() != nil {
			return nil, wr.Ctx.Err()
		}
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return resp, nil
	}
	// The connection outlives the request: the client's leaving no longer
	// ends it (too late: its cancel spoiled the deadlines already).
	if !resp.Body.(*Body).stop() {
		c.Close()
		bufpool.PutReader(pc.br)
		return nil, context.Cause(wr.Ctx)
	}
	c.SetDeadline(time.Time{})
	resp.Body = &Upgraded{Conn: c, Reader: pc.br}
	return resp, nil
}

// Upgraded is the Body of a 101 answer: the connection to the server,
// now the caller's, and its reader (from bufpool), which holds what the
// server sent after the head.
type Upgraded struct {
	Conn   net.Conn
	Reader *bufio.Reader
}

func (u *Upgraded) Read(p []byte) (int, error) { return u.Reader.Read(p) }
func (u *Upgraded) Close() error               { return u.Conn.Close() }

// exchange writes wr and reads the response headers on pc.
func (pc *pconn) exchange(wr *Request, now, headerDeadline time.Time) (*http.Response, error) {
	stop := func() bool { return true }
	watched := false
	if wr.Body != nil {
		// A body may fill the socket: writing it is bounded too, and a
		// client that goes away interrupts it.
		stop, watched = pc.watch(wr.Ctx), true
		pc.c.SetWriteDeadline(headerDeadline)
		if pc.beginWait(wr) {
			stop()
			return nil, ErrUnsent
		}
	}
	// Most answers come at once: wait a moment for the first byte before
	// paying for a watch on the client's context, which a client that goes
	// away while the server thinks needs. short: the read deadline is that
	// moment, and nothing watches the client (nor the server's health).
	fast := now.Add(FastAnswer)
	quick := wr.Body == nil && fast.Before(headerDeadline)
	short := false
	if quick {
		pc.shortDeadline(fast, headerDeadline)
	}
	var err error
	late := false // the short wait passed with nothing to read
	if quick && pc.waiter != nil && pc.br.Buffered() == 0 {
		err, late = pc.sendThenWait(wr)
		if testHookAfterWait != nil {
			testHookAfterWait()
		}
	} else {
		err = wr.Write(pc.bw)
	}
	if err == nil && quick && !late {
		// The read itself may still meet the short deadline (it passed
		// after the wait saw the socket readable): a late answer too.
		_, perr := pc.br.Peek(1)
		short = !isTimeout(perr) // another failed read is met again below
	}
	if err != nil {
		stop()
		return nil, pc.endWait(wr, pc.classify(err, false))
	}
	if !short && wr.Body == nil {
		stop, watched = pc.watch(wr.Ctx), true
		pc.beginWait(wr)
	}
	if !short {
		pc.setReadDeadline(headerDeadline)
	}
	// A close before the first byte of an answer means the server never
	// took the request: on a kept-alive connection that is a stale one,
	// which http.ReadResponse would report as an unexpected EOF, like a
	// response cut short. (When the short wait saw the byte, it is buffered.)
	pc.lim.left = MaxResponseHead
	defer func() { pc.lim.left = unlimited }()
	if _, err := pc.br.Peek(1); err != nil {
		stop()
		return nil, pc.endWait(wr, pc.classify(err, false))
	}
	req := &pc.req
	req.Method = wr.Method
	var resp *http.Response
	for informational := 0; ; informational++ {
		if informational > MaxInformational {
			err = ErrTooManyInformational
			break
		}
		// Headers already in the buffer are parsed without another read:
		// the short deadline can stay. Otherwise the server is still at
		// work, and the client is watched.
		if short && !headerBuffered(pc.br) {
			short = false
			stop, watched = pc.watch(wr.Ctx), true
			pc.beginWait(wr)
			pc.setReadDeadline(headerDeadline)
		}
		resp, err = readResponse(pc.br, req)
		// Informational answers (100 Continue, 103 Early Hints) precede the real one.
		if err != nil || resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols && !wr.Upgrade {
		err = errors.New("server switched protocols on a request that did not ask to")
	}
	if err != nil {
		stop()
		return nil, pc.endWait(wr, pc.classify(err, true))
	}
	// Abandoned is read once the wait ended: an abandon cannot come after
	// Done (both hold the server's lock), and one that came before has
	// spoiled the deadlines.
	w := pc.w
	pc.endWait(wr, nil)
	abandoned := w.Abandoned()
	if short && wr.Server != nil {
		wr.Server.Answered(now)
	}
	// Headers are in: the body may stream as long as it takes. A body
	// already in the buffer needs no read, so the deadline can stay (the
	// next exchange on this connection sets its own). An abandon that
	// came as the head did spoiled the deadlines: the head stands.
	if wr.Body != nil || abandoned {
		pc.c.SetDeadline(time.Time{})
		pc.fastUntil = time.Time{}
	} else if resp.ContentLength < 0 || int64(pc.br.Buffered()) < resp.ContentLength {
		pc.c.SetReadDeadline(time.Time{})
		pc.fastUntil = time.Time{}
	}
	// The connection of an upgrade is never pooled (its buffers are not its own).
	resp.Body = &Body{rc: resp.Body, n: resp.ContentLength, pc: pc, stop: stop, reusable: !resp.Close && !wr.Upgrade,
		ctx: wr.Ctx, watched: watched, idle: wr.BodyIdle}
	return resp, nil
}

// beginWait registers the exchange as waiting for a response head from
// its server (once), and reports whether it was abandoned at once.
func (pc *pconn) beginWait(wr *Request) bool {
	if wr.Server == nil || pc.w != nil {
		return false
	}
	c := pc.c
	pc.w = wr.Server.Wait(wr.Gen, wr.Pinned, wr.StallAfter, wr.OnStall, func() { c.SetDeadline(aLongTimeAgo) })
	return pc.w.Abandoned()
}

// endWait ends the wait that beginWait registered; a failure of an
// abandoned exchange becomes ErrAbandoned.
func (pc *pconn) endWait(wr *Request, err error) error {
	w := pc.w
	if w == nil {
		return err
	}
	pc.w = nil
	wr.Server.Done(w, err == nil)
	if err != nil && w.Abandoned() {
		return fmt.Errorf("%w: %w", ErrAbandoned, err)
	}
	return err
}

// setReadDeadline sets the read deadline, unless an abandon moved it to
// the past (it may have run just before).
func (pc *pconn) setReadDeadline(t time.Time) {
	pc.c.SetReadDeadline(t)
	pc.fastUntil = time.Time{}
	if pc.w.Abandoned() {
		pc.c.SetDeadline(aLongTimeAgo)
	}
}

// watch interrupts pc's reads and writes when ctx (the client's) ends; the
// function it returns stops watching, and reports false if too late.
func (pc *pconn) watch(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() { pc.c.SetDeadline(aLongTimeAgo) })
}

// classify names a failed exchange: a timeout, or a stale kept-alive
// connection that the server closed before reading anything.
// received says whether any of the answer had arrived.
func (pc *pconn) classify(err error, received bool) error {
	if isTimeout(err) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	if pc.reused && !received {
		return fmt.Errorf("%w: %w", ErrStale, err)
	}
	return err
}

// testHookAfterWait, when set by a test, runs between the wait for an
// answer and its read.
var testHookAfterWait func()

// shortDeadline arms the wait for a fast answer: a read deadline between
// fast and fast+FastAnswer, never past the head's deadline. One armed by
// an earlier exchange is kept while it is in that span, so that most
// exchanges update no timer.
func (pc *pconn) shortDeadline(fast, headerDeadline time.Time) {
	if pc.fastUntil.After(fast) && pc.fastUntil.Sub(fast) <= FastAnswer && !pc.fastUntil.After(headerDeadline) {
		return
	}
	pc.fastUntil = fast.Add(FastAnswer / 2)
	if pc.fastUntil.After(headerDeadline) {
		pc.fastUntil = headerDeadline
	}
	pc.c.SetReadDeadline(pc.fastUntil)
}

// sendThenWait writes wr from inside a wait for its answer (see
// sockwait): it returns once the socket has something to read, a hang-up,
// or the read deadline passed. The read itself is left to the caller,
// which finds the bytes there. It returns the write's error, and whether
// the deadline passed first.
func (pc *pconn) sendThenWait(wr *Request) (err error, timedOut bool) {
	pc.sending = wr
	sent, err, werr := pc.waiter.SendThenWait()
	pc.sending = nil
	if !sent {
		// The wait could not begin (the socket failed, or the deadline
		// had passed): send as usual; the read will tell.
		return wr.Write(pc.bw), isTimeout(werr)
	}
	return err, err == nil && isTimeout(werr)
}
