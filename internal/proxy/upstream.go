package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/bufpool"
	"github.com/tandemproxy/tandem/internal/httpsyntax"
)

// upstream is the HTTP/1.1 client towards the servers. It is written for a
// proxy: one exchange runs wholly in the caller's goroutine (net/http's
// Transport hands each request to a writer and a reader goroutine per
// connection, three wake-ups a request), idle connections are reused last
// in first out, and a timeout is a socket deadline rather than a timer.
type upstream struct {
	dial        func(ctx context.Context, addr string) (net.Conn, error)
	maxIdle     int           // idle connections kept per server
	idleTimeout time.Duration // an idle connection older than this is closed, not reused

	mu   sync.Mutex
	idle map[string][]*pconn
	// names follows servers named by host name: connections to an
	// address the name lost are not reused.
	names *names
}

// pconn is one connection to a server.
type pconn struct {
	u         *upstream
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
}

// Bounds on what a server may send before its real response head, as
// net/http's Transport has (MaxResponseHeaderBytes, its limit on 1xx
// answers): an endless head or endless 100-continues cost a bounded amount
// of memory and time, end the exchange and count against the server.
const (
	maxResponseHead  = 1 << 20
	maxInformational = 5
)

var (
	errHeadTooLarge         = fmt.Errorf("server's response head is larger than %d bytes", maxResponseHead)
	errTooManyInformational = fmt.Errorf("server sent more than %d informational (1xx) responses", maxInformational)
)

// headLimit is the connection as br reads it: while a response head is
// read, at most left bytes come through.
type headLimit struct {
	c    net.Conn
	left int64
}

func (l *headLimit) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errHeadTooLarge
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

// fastAnswer is how long a bodiless request waits for its answer before the
// client's context is watched.
const fastAnswer = 20 * time.Millisecond

// headerBuffered reports whether the whole response head is buffered.
func headerBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, []byte("\r\n\r\n"))
}

func isTimeout(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errStale means a reused connection had been closed by the server before
// it received anything: the request was not processed.
var errStale = errors.New("kept-alive connection was closed by the server")

func newUpstream(dial func(ctx context.Context, addr string) (net.Conn, error)) *upstream {
	return &upstream{dial: dial, maxIdle: 256, idleTimeout: 30 * time.Second, idle: map[string][]*pconn{}, names: newNames()}
}

// roundTrip sends wr to addr and reads the response headers before
// headerDeadline. The response body streams from the connection, which
// goes back to the pool when the body was read to its end and closed. now
// is the time the try started. A kept-alive connection that the server
// had closed fails with errStale: whether to send again is the caller's
// rule (a request that may not be sent again goes on a connection checked
// first: wr.resendable).
func (u *upstream) roundTrip(wr *wireRequest, addr string, now, headerDeadline time.Time) (*http.Response, error) {
	pc, err := u.get(wr.ctx, addr, wr.connect, wr.resendable, now)
	if err != nil {
		return nil, err
	}
	resp, err := pc.exchange(wr, now, headerDeadline)
	if err != nil {
		pc.c.Close()
		if wr.ctx.Err() != nil {
			return nil, wr.ctx.Err()
		}
		return nil, err
	}
	return resp, nil
}

// upgrade sends wr, a request to switch protocols, on a new connection to
// addr (never a pooled one: the connection is the caller's after a 101)
// and reads the answer as roundTrip does. The Body of a 101 answer is an
// *upgraded: the connection and what was read of it. Any other answer's
// body closes the connection when closed.
func (u *upstream) upgrade(wr *wireRequest, addr string, now, headerDeadline time.Time) (*http.Response, error) {
	c, err := u.connect(wr.ctx, addr, wr.connect)
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
		if wr.ctx.Err() != nil {
			return nil, wr.ctx.Err()
		}
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return resp, nil
	}
	// The connection outlives the request: the client's leaving no longer
	// ends it (too late: its cancel spoiled the deadlines already).
	if !resp.Body.(*upstreamBody).stop() {
		c.Close()
		bufpool.PutReader(pc.br)
		return nil, context.Cause(wr.ctx)
	}
	c.SetDeadline(time.Time{})
	resp.Body = &upgraded{conn: c, br: pc.br}
	return resp, nil
}

// upgraded is the Body of a 101 answer: the connection to the server and
// its reader, which holds what the server sent after the head.
type upgraded struct {
	conn net.Conn
	br   *bufio.Reader
}

func (u *upgraded) Read(p []byte) (int, error) { return u.br.Read(p) }
func (u *upgraded) Close() error               { return u.conn.Close() }

// exchange writes wr and reads the response headers on pc.
func (pc *pconn) exchange(wr *wireRequest, now, headerDeadline time.Time) (*http.Response, error) {
	stop := func() bool { return true }
	watched := false
	if wr.body != nil {
		// A body may fill the socket: writing it is bounded too, and a
		// client that goes away interrupts it.
		stop, watched = pc.watch(wr.ctx), true
		pc.c.SetWriteDeadline(headerDeadline)
		if pc.beginWait(wr) {
			stop()
			return nil, errRepick
		}
	}
	if err := wr.write(pc.bw); err != nil {
		stop()
		return nil, pc.endWait(wr, pc.classify(err, false))
	}
	// Most answers come at once: wait a moment for the first byte before
	// paying for a watch on the client's context, which a client that goes
	// away while the server thinks needs. short: the read deadline is that
	// moment, and nothing watches the client (nor the server's health).
	short := false
	if fast := now.Add(fastAnswer); wr.body == nil && fast.Before(headerDeadline) {
		pc.c.SetReadDeadline(fast)
		_, err := pc.br.Peek(1)
		short = !isTimeout(err)
	}
	if !short && wr.body == nil {
		stop, watched = pc.watch(wr.ctx), true
		pc.beginWait(wr)
	}
	if !short {
		pc.setReadDeadline(headerDeadline)
	}
	// A close before the first byte of an answer means the server never
	// took the request: on a kept-alive connection that is a stale one,
	// which http.ReadResponse would report as an unexpected EOF, like a
	// response cut short. (When the short wait saw the byte, it is buffered.)
	pc.lim.left = maxResponseHead
	defer func() { pc.lim.left = unlimited }()
	if _, err := pc.br.Peek(1); err != nil {
		stop()
		return nil, pc.endWait(wr, pc.classify(err, false))
	}
	req := &pc.req
	req.Method = wr.method
	var resp *http.Response
	var err error
	for informational := 0; ; informational++ {
		if informational > maxInformational {
			err = errTooManyInformational
			break
		}
		// Headers already in the buffer are parsed without another read:
		// the short deadline can stay. Otherwise the server is still at
		// work, and the client is watched.
		if short && !headerBuffered(pc.br) {
			short = false
			stop, watched = pc.watch(wr.ctx), true
			pc.beginWait(wr)
			pc.setReadDeadline(headerDeadline)
		}
		resp, err = readResponse(pc.br, req)
		// Informational answers (100 Continue, 103 Early Hints) precede the real one.
		if err != nil || resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols && !wr.upgrade {
		err = errors.New("server switched protocols on a request that did not ask to")
	}
	if err != nil {
		stop()
		return nil, pc.endWait(wr, pc.classify(err, true))
	}
	abandoned := pc.w.Abandoned()
	pc.endWait(wr, nil)
	if short && wr.server != nil {
		wr.server.Answered(now)
	}
	// Headers are in: the body may stream as long as it takes. A body
	// already in the buffer needs no read, so the deadline can stay (the
	// next exchange on this connection sets its own). An abandon that
	// came as the head did spoiled the deadlines: the head stands.
	if wr.body != nil || abandoned {
		pc.c.SetDeadline(time.Time{})
	} else if resp.ContentLength < 0 || int64(pc.br.Buffered()) < resp.ContentLength {
		pc.c.SetReadDeadline(time.Time{})
	}
	// The connection of an upgrade is never pooled (its buffers are not its own).
	resp.Body = &upstreamBody{rc: resp.Body, n: resp.ContentLength, pc: pc, stop: stop, reusable: !resp.Close && !wr.upgrade,
		ctx: wr.ctx, watched: watched, idle: wr.bodyIdle}
	return resp, nil
}

// beginWait registers the exchange as waiting for a response head from
// its server (once), and reports whether it was abandoned at once.
func (pc *pconn) beginWait(wr *wireRequest) bool {
	if wr.server == nil || pc.w != nil {
		return false
	}
	c := pc.c
	pc.w = wr.server.Wait(wr.gen, wr.pinned, wr.stallAfter, wr.onStall, func() { c.SetDeadline(aLongTimeAgo) })
	return pc.w.Abandoned()
}

// endWait ends the wait that beginWait registered; a failure of an
// abandoned exchange becomes errAbandoned.
func (pc *pconn) endWait(wr *wireRequest, err error) error {
	w := pc.w
	if w == nil {
		return err
	}
	pc.w = nil
	wr.server.Done(w, err == nil)
	if err != nil && w.Abandoned() {
		return fmt.Errorf("%w: %w", errAbandoned, err)
	}
	return err
}

// setReadDeadline sets the read deadline, unless an abandon moved it to
// the past (it may have run just before).
func (pc *pconn) setReadDeadline(t time.Time) {
	pc.c.SetReadDeadline(t)
	if pc.w.Abandoned() {
		pc.c.SetDeadline(aLongTimeAgo)
	}
}

// readResponse reads a response head from br: the common case by
// readResponseFast, anything else by http.ReadResponse. The body of a
// response read the fast way is nil: the Content-Length bytes that follow.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	if resp := readResponseFast(br, req); resp != nil {
		return resp, nil
	}
	return http.ReadResponse(br, req)
}

var crlf2 = []byte("\r\n\r\n")

// readResponseFast parses, with a few allocations rather than a dozen, the
// response head that servers send almost always, when it is whole in br's
// buffer: HTTP/1.1, a status from 200 to 599 other than 204 and 304, one
// Content-Length, no Transfer-Encoding, Trailer or Pragma, every header on
// one line with a valid name and value, to a request other than HEAD. It
// returns what http.ReadResponse would, or nil having consumed nothing
// when the head is anything else, for http.ReadResponse to read (or
// refuse) as it always did.
func readResponseFast(br *bufio.Reader, req *http.Request) *http.Response {
	if req.Method == http.MethodHead {
		return nil
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, crlf2)
	if end < 0 {
		return nil
	}
	head := string(buf[:end+2]) // every line with its CRLF
	line, rest, _ := strings.Cut(head, "\r\n")
	// "HTTP/1.1 200" and an optional reason phrase.
	if len(line) < 12 || line[:9] != "HTTP/1.1 " || len(line) > 12 && line[12] != ' ' ||
		strings.ContainsAny(line, "\r\n") {
		return nil
	}
	status := line[9:]
	code := 0
	for _, c := range []byte(status[:3]) {
		if c < '0' || c > '9' {
			return nil
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code > 599 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil
	}
	n := strings.Count(rest, "\r\n")
	h := make(http.Header, n)
	vals := make([]string, n)
	var length []string
	for rest != "" {
		line, rest, _ = strings.Cut(rest, "\r\n")
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !httpsyntax.Token(line[:colon]) {
			return nil // a continuation line, a bad name or no colon
		}
		v := httpsyntax.TrimOWS(line[colon+1:])
		if !httpsyntax.FieldValue(v) {
			return nil
		}
		k := textproto.CanonicalMIMEHeaderKey(line[:colon])
		switch k {
		case "Transfer-Encoding", "Trailer", "Pragma":
			return nil
		}
		if vv, ok := h[k]; ok {
			h[k] = append(vv, v)
		} else {
			vals[0] = v
			h[k], vals = vals[:1:1], vals[1:]
		}
		if k == "Content-Length" {
			length = h[k]
		}
	}
	if len(length) != 1 {
		return nil
	}
	size, ok := parseLength(length[0])
	if !ok {
		return nil
	}
	br.Discard(end + 4)
	resp := &http.Response{Status: status, StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: size, Request: req}
	if conn := h["Connection"]; len(conn) > 0 && httpsyntax.HasToken(conn, "close") {
		// As net/http: the connection ends with this response.
		delete(h, "Connection")
		resp.Close = true
	}
	if size == 0 {
		resp.Body = http.NoBody
	}
	return resp
}

// parseLength parses a Content-Length of 1 to 18 digits.
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
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
		return fmt.Errorf("%w: %w", errTimeout, err)
	}
	if pc.reused && !received {
		return fmt.Errorf("%w: %w", errStale, err)
	}
	return err
}

// get returns an idle connection to addr or dials one. A connection that
// will carry a request that may not be sent twice is first checked for a
// close from the server, which a resendable request instead survives by
// being sent again.
func (u *upstream) get(ctx context.Context, addr string, connect time.Duration, resendable bool, now time.Time) (*pconn, error) {
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
	lim := &headLimit{c: c, left: unlimited}
	return &pconn{u: u, addr: addr, named: isName(addr), c: c, lim: lim, br: bufio.NewReaderSize(lim, 4096), bw: bufio.NewWriterSize(c, 4096)}, nil
}

// connect dials addr, bounded by timeout.
func (u *upstream) connect(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return u.dial(dctx, addr)
}

func (u *upstream) pop(addr string, now time.Time) *pconn {
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
func (u *upstream) drainStale(addr string, current []netip.Addr) {
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

func (u *upstream) put(pc *pconn) {
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

// closeIdle closes every idle connection (after a reload).
func (u *upstream) closeIdle() {
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

// upstreamBody is a response body; it returns its connection to the pool
// when read to the end, and closes it otherwise.
type upstreamBody struct {
	rc       io.ReadCloser // nil: the n bytes that follow in pc.br
	n        int64
	pc       *pconn
	stop     func() bool
	eof      bool
	closed   bool
	reusable bool
	// ctx is the client's: when it ends, a read waiting on the server
	// ends too (watched: that is arranged already). idle bounds each wait
	// for more of the body.
	ctx     context.Context
	watched bool
	idle    time.Duration
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.pc.br.Buffered() == 0 {
		// This read waits on the server: bounded, and ended by a client
		// that leaves, so a stalled body holds no goroutine, fds or
		// connection slot for ever.
		if !b.watched {
			b.stop, b.watched = b.pc.watch(b.ctx), true
		}
		if b.idle > 0 {
			b.pc.c.SetReadDeadline(time.Now().Add(b.idle))
			if err := b.ctx.Err(); err != nil {
				return 0, err // the client left before the deadline moved: its cancel stands
			}
		}
	}
	if b.rc == nil {
		return b.readLength(p)
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// readLength reads a body of b.n more bytes, as net/http's body does: the
// last bytes come with io.EOF, and an early end is io.ErrUnexpectedEOF.
func (b *upstreamBody) readLength(p []byte) (int, error) {
	if b.n <= 0 {
		b.eof = true
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.pc.br.Read(p)
	b.n -= int64(n)
	switch {
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	case err == nil && b.n == 0:
		b.eof = true
		err = io.EOF
	}
	return n, err
}

func (b *upstreamBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	// stop reports false when the client's cancel already ran and spoiled
	// the connection's deadline.
	live := b.stop()
	if !b.eof || !b.reusable || !live || b.pc.br.Buffered() > 0 {
		// net/http's body Close would read the rest; closing the socket is
		// what a client that left deserves. Bytes after the body answer no
		// request: reused, the connection would hand them to the next one.
		return b.pc.c.Close()
	}
	if b.rc != nil {
		b.rc.Close()
	}
	b.pc.u.put(b.pc)
	return nil
}
