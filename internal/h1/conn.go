package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tandemproxy/tandem/internal/bufpool"
	"github.com/tandemproxy/tandem/internal/sockwait"
)

// Connection states, for Shutdown: only an idle connection (waiting for a
// request) is closed under a client's feet.
const (
	stateActive int32 = iota
	stateIdle
	stateClosed
)

// maxPostHandlerRead is how much of a request body the handler left unread
// is read and dropped to keep the connection (net/http's 256 KiB).
const maxPostHandlerRead = 256 << 10

// conn is one client connection on the fast path.
type conn struct {
	s *Server
	// nc is the TCP connection (deadlines, close, the client watch); rw
	// carries the bytes: nc itself, or the TLS connection over it.
	nc     net.Conn
	rw     net.Conn
	tls    *tls.ConnectionState // nil on a plain listener
	br     *bufio.Reader
	bw     *bufio.Writer
	state  atomic.Int32
	remote string
	// values is the connection's context (local address, server); each
	// request gets a clientCtx over it, ctx.
	values context.Context
	ctx    *clientCtx
	rc     syscall.RawConn // for ctx's watch, made when first needed
	// gone: the client closed or reset the connection during a request.
	gone atomic.Bool
	// served counts the requests answered; lastPOST: the last was a POST.
	served   int
	lastPOST bool
	res      response
	body     body
	hdr      http.Header // request headers, cleared and reused
	vals     []string    // backing array of the header values
	url      url.URL     // reused by each request
	// dl is the kind of read deadline set; idleUntil, the idle one's time.
	dl        int
	idleUntil time.Time
	// broken: a read or write failed midway; the connection cannot carry
	// another request.
	broken bool
	// hijacked: the handler took the connection (a protocol upgrade).
	hijacked bool
	// early: the client was seen sending before it had its answer (a
	// pipelined request, or a wait that had to be rescued): its next
	// requests are read the usual way (flushLater). flusher sends the
	// answer from inside the wait for the next request (flushThenWait).
	early   bool
	flusher *sockwait.Sender
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{s: s, nc: nc, rw: nc, remote: nc.RemoteAddr().String()}
}

// handshake runs the TLS handshake, bounded by ReadHeaderTimeout as
// net/http bounds it. An HTTP/2 connection goes to the fallback server at
// once, as the *tls.Conn it expects (handed true); HTTP/1.1 stays here.
func (c *conn) handshake() (handed bool, err error) {
	tc := tls.Server(sockwait.Conn(c.nc), c.s.TLSConfig)
	c.nc.SetDeadline(deadline(c.s.ReadHeaderTimeout))
	// Idle for Shutdown: a client yet to finish its handshake is closed,
	// not waited for.
	c.state.Store(stateIdle)
	err = tc.HandshakeContext(context.Background())
	if !c.state.CompareAndSwap(stateIdle, stateActive) {
		return false, ErrServerClosed
	}
	if err != nil {
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			// As net/http: plain HTTP on a TLS port gets told so.
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		}
		// A scanner or a client with no common suite is no event worth
		// more than a debug line.
		c.s.log().Debug("TLS handshake failed", "remote", c.remote, "error", err)
		return false, err
	}
	c.nc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	if st.NegotiatedProtocol == "h2" {
		c.s.untrack(c)
		if !c.s.handoff.give(tc) {
			tc.Close()
		}
		return true, nil
	}
	c.rw, c.tls = tc, &st
	return false, nil
}

// looksLikeHTTP reports whether a TLS record header is the start of a
// plain HTTP request (net/http's test).
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// serve runs the connection's request loop. The connection is closed at
// the end unless it was handed over to the fallback server.
func (c *conn) serve() {
	if c.s.TLSConfig != nil {
		if handed, err := c.handshake(); handed || err != nil {
			if err != nil {
				c.nc.Close()
				c.s.untrack(c)
			}
			return
		}
	}
	c.values = context.WithValue(context.WithValue(context.Background(),
		http.ServerContextKey, c.s.Fallback), http.LocalAddrContextKey, c.nc.LocalAddr())
	rw := sockwait.IO(c.rw)
	c.br = bufpool.Reader(rw)
	c.bw = bufpool.Writer(rw)
	c.hdr = make(http.Header, 16)
	c.res.own = make(http.Header, 16)
	handed := false
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.s.log().Error("panic serving request", "remote", c.remote, "panic", v, "stack", string(buf))
		}
		if c.ctx != nil {
			c.ctx.end()
		}
		if c.hijacked {
			return // the handler owns the connection and its buffers
		}
		if !handed {
			c.close()
		}
		bufpool.PutReader(c.br)
		bufpool.PutWriter(c.bw)
	}()
	for {
		r, ok, err := c.next()
		if err != nil {
			return
		}
		if !ok {
			handed = c.handOver()
			return
		}
		c.s.Handler.ServeHTTP(&c.res, r)
		c.ctx.end()
		if c.hijacked {
			return
		}
		c.served++
		c.lastPOST = r.Method == http.MethodPost
		// A client that left (or half-closed) gets what was answered, and
		// no further request.
		if err := c.res.finish(); err != nil || c.res.closeAfter || c.broken || c.s.closing.Load() || c.gone.Load() {
			return
		}
	}
}

// close ends the connection, with what the writer holds sent first. A
// connection closed with body bytes unread half-closes and waits a moment
// first, as net/http does: closing a socket with unread data resets it,
// and the reset could reach the client before the answer does.
func (c *conn) close() {
	if !c.broken {
		c.bw.Flush()
	}
	if c.res.unreadBody {
		if cw, ok := c.rw.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
			time.Sleep(rstAvoidanceDelay)
		}
	}
	c.rw.Close() // over TLS, with a close_notify first
	c.s.untrack(c)
}

// rstAvoidanceDelay is net/http's pause between half-closing and closing.
const rstAvoidanceDelay = 500 * time.Millisecond

// next waits for the next request and reads its head. ok is false when the
// request is not for the fast path (the connection is to be handed over);
// err ends the connection (closed, timed out, shut down).
func (c *conn) next() (r *http.Request, ok bool, err error) {
	// The first request's head is due ReadHeaderTimeout after the accept
	// (as with net/http); later ones wait IdleTimeout for their first byte.
	first := c.served == 0
	if !first && c.br.Buffered() > 0 {
		c.early = true // this request came with the last one: a client that sends ahead
	}
	for {
		// An answer held back by flushLater goes out as the wait begins,
		// the connection still active: Shutdown waits for it (at most
		// rescueAfter and a half) rather than close it with the answer
		// unsent. Once the client's bytes came, they are read at once.
		ready := false
		if c.br.Buffered() == 0 && c.bw.Buffered() > 0 && !first {
			var err error
			if ready, err = c.flushThenWait(); err != nil {
				return nil, false, err
			}
		}
		if ready {
			_, err := c.br.Peek(1)
			if err != nil && !isTimeout(err) {
				return nil, false, err
			}
			// A timeout: the bound passed as the bytes came; wait as usual.
		}
		if c.br.Buffered() == 0 {
			c.state.Store(stateIdle)
			if c.s.closing.Load() {
				return nil, false, ErrServerClosed
			}
			if first {
				c.headerDeadline()
			} else {
				c.idleDeadline()
			}
			if _, err := c.br.Peek(1); err != nil {
				return nil, false, err
			}
			if !c.state.CompareAndSwap(stateIdle, stateActive) {
				return nil, false, ErrServerClosed // Shutdown closed it
			}
		}
		if !c.lastPOST {
			break
		}
		// Old clients send a CRLF after a POST body; net/http drops up to
		// four such bytes before the next request.
		c.lastPOST = false
		b, _ := c.br.Peek(min(4, c.br.Buffered()))
		n := 0
		for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
			n++
		}
		c.br.Discard(n)
	}
	c.state.Store(stateActive)
	head, err := c.readHead(first)
	if err != nil || head == nil {
		return nil, false, err
	}
	r = c.newRequest()
	if !c.parseHead(head, r) {
		return nil, false, nil
	}
	c.br.Discard(len(head))
	if r.ContentLength > 0 {
		// The body is read while the handler runs, with no deadline (as
		// net/http without ReadTimeout); the response timeouts bound it.
		c.noDeadline()
		c.body = body{c: c, n: r.ContentLength}
		r.Body = &c.body
	} else {
		c.body = body{}
		r.Body = http.NoBody
	}
	c.ctx.unread = r.ContentLength > 0
	c.res.reset(c, r)
	return r, true, nil
}

// Read deadlines: the idle one while waiting for a request; the header
// one only for a head that does not come whole with its first bytes (so
// the common request pays one timer update, not two); none while a
// handler reads the body or the client watch waits.
const (
	dlNone = iota
	dlIdle
	dlHeader
	dlPast   // the client watch was stopped with a past deadline
	dlRescue // flushThenWait's bound
)

// idleDeadline arms the wait for the next request. An idle deadline
// still at least IdleTimeout away is kept: one is armed idleSlack beyond,
// so a busy kept-alive connection updates its timer once in idleSlack
// rather than at every request, and an idle one is closed at most
// idleSlack late.
func (c *conn) idleDeadline() {
	if c.s.IdleTimeout <= 0 {
		c.noDeadline()
		return
	}
	// time.Until reads the monotonic clock alone: one clock read where
	// time.Now makes two, in the case of almost every request.
	if c.dl == dlIdle && time.Until(c.idleUntil) >= c.s.IdleTimeout {
		return
	}
	c.idleUntil = time.Now().Add(c.s.IdleTimeout + idleSlack(c.s.IdleTimeout))
	c.nc.SetReadDeadline(c.idleUntil)
	c.dl = dlIdle
}

// rescueAfter bounds flushThenWait's wait: a client that sent before the
// wait began waits at most this long for its answer (once: its connection
// is read the usual way from then on), an idle one is then waited for
// with the idle deadline.
const rescueAfter = 50 * time.Millisecond

// flushLater reports whether the answer in the writer may go out as the
// wait for the next request begins (flushThenWait) rather than now: on a
// plain connection to be kept, whose client waits for each answer before
// it sends again (none seen early), with nothing read of a next request.
// (Over TLS the TLS connection may hold bytes the socket no longer shows.)
func (c *conn) flushLater() bool {
	return c.tls == nil && !c.early && !c.broken && c.br.Buffered() == 0 &&
		(c.s.IdleTimeout <= 0 || c.s.IdleTimeout > 2*rescueAfter)
}

// flushThenWait sends the answer held back (flushLater) and waits, without
// a read, until the client's next bytes come. Go's poller forgets a
// socket's readiness when a read begins: a read begun after the answer
// went out would first find nothing (EAGAIN) and only then wait, one
// system call for nothing a request. Begun before the answer goes out,
// the wait cannot miss what a client sends after its answer, which is all
// a client that waits for answers sends. Should this client have sent
// early after all (its bytes came before the wait began, their readiness
// taken), the wait ends at rescueAfter, and it is read the usual way from
// then on; so is a client that just stays idle that long.
// It reports whether the client's bytes came (false: the wait ended
// without them, or could not begin; the answer is sent either way).
func (c *conn) flushThenWait() (ready bool, err error) {
	rc, ok := c.raw()
	if !ok {
		return false, c.flush()
	}
	if c.flusher == nil {
		c.flusher = sockwait.New(rc, c.bw.Flush)
	}
	c.rescueDeadline()
	// Let the goroutines already runnable (the other connections the
	// same poll woke) go first, so that answers leave in bursts, as an
	// event loop sends them: a client's loop, woken once, then reads
	// several; sent as each was ready, it woke for one or two. Under wrk
	// -t2 -c64, per request: wrk's epoll_wait 0.52-0.56 -> 0.42-0.45
	// (HAProxy's 0.41-0.48), the backend's context switches 0.36 -> 0.27-0.30,
	// the gateway's own cost alike. With nothing else runnable it returns
	// at once.
	runtime.Gosched()
	sent, ferr, err := c.flusher.SendThenWait()
	switch {
	case !sent:
		// The wait did not begin (the socket failed): send as usual.
		return false, c.flush()
	case ferr != nil:
		c.broken = true
		return false, ferr
	case isTimeout(err):
		c.early = true
		return false, nil
	}
	return err == nil, err
}

// isTimeout reports whether err is a deadline's.
var isTimeout = sockwait.IsTimeout

// flush sends what the writer holds.
func (c *conn) flush() error {
	if err := c.bw.Flush(); err != nil {
		c.broken = true
		return err
	}
	return nil
}

// rescueDeadline arms flushThenWait's bound: kept from the last wait while
// it is rescueAfter to twice that away, as idleDeadline keeps its own.
func (c *conn) rescueDeadline() {
	if left := time.Until(c.idleUntil); c.dl == dlRescue && left >= rescueAfter && left <= 2*rescueAfter {
		return
	}
	c.idleUntil = time.Now().Add(rescueAfter + rescueAfter/2)
	c.nc.SetReadDeadline(c.idleUntil)
	c.dl = dlRescue
}

// idleSlack is how late an idle connection may be closed: a sixteenth of
// the idle timeout, at most a second.
func idleSlack(idle time.Duration) time.Duration {
	return min(idle/16, time.Second)
}

// headerDeadline bounds reading a head (slowloris).
func (c *conn) headerDeadline() {
	c.nc.SetReadDeadline(deadline(c.s.ReadHeaderTimeout))
	c.dl = dlHeader
}

// noDeadline lifts the deadline while a handler reads the body, or the
// client watch waits for the whole request.
func (c *conn) noDeadline() {
	if c.dl != dlNone {
		c.nc.SetReadDeadline(time.Time{})
		c.dl = dlNone
	}
}

// deadline is now+d, or none for a zero d (as net/http's timeouts).
func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

var crlf2 = []byte("\r\n\r\n")

// readHead returns the request head (through its blank line) once it is
// whole in the reader's buffer, without consuming it. It returns nil, nil
// for a head that cannot be on the fast path: longer than the buffer or
// MaxHeaderBytes, or not starting as a request line does.
//
// armed tells that the header deadline already runs for this head (the
// first request's, since the accept); otherwise it starts at the first
// read the head needs after its first bytes.
func (c *conn) readHead(armed bool) ([]byte, error) {
	limit := min(c.br.Size(), c.s.MaxHeaderBytes)
	for n := c.br.Buffered(); ; n = c.br.Buffered() {
		buf, _ := c.br.Peek(n)
		if len(buf) > 0 && (buf[0] < 'A' || buf[0] > 'Z') {
			return nil, nil // not a method: garbage, TLS, a stray CRLF
		}
		if i := bytes.Index(buf, crlf2); i >= 0 {
			if i+4 > limit {
				return nil, nil
			}
			return buf[:i+4], nil
		}
		if n >= limit {
			return nil, nil
		}
		if !armed {
			c.headerDeadline()
			armed = true
		}
		if _, err := c.br.Peek(n + 1); err != nil {
			return nil, err
		}
	}
}

// newRequest returns a request with a new clientCtx, its fields to be
// filled by parseHead.
func (c *conn) newRequest() *http.Request {
	c.ctx = newClientCtx(c)
	var tmpl http.Request
	r := tmpl.WithContext(c.ctx)
	clear(c.hdr)
	r.Header = c.hdr
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.RemoteAddr = c.remote
	r.TLS = c.tls
	return r
}

// handOver gives the connection, with what was read of it, to the
// fallback server.
func (c *conn) handOver() bool {
	buffered, _ := c.br.Peek(c.br.Buffered()) // cannot fail: that much is buffered
	pre := bytes.Clone(buffered)
	c.s.untrack(c)
	c.nc.SetReadDeadline(time.Time{})
	var hc net.Conn = &bufpool.PrefixConn{Conn: c.rw, Pre: pre}
	if tc, ok := c.rw.(*tls.Conn); ok {
		hc = &tlsPrefixConn{PrefixConn: hc.(*bufpool.PrefixConn), tc: tc}
	}
	if !c.s.handoff.give(hc) {
		c.rw.Close()
	}
	return true
}

// raw returns the socket for clientCtx's watch.
func (c *conn) raw() (syscall.RawConn, bool) {
	if c.rc == nil {
		sc, ok := c.nc.(syscall.Conn)
		if !ok {
			return nil, false
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return nil, false
		}
		c.rc = rc
	}
	return c.rc, true
}

// body is a request body of known length, read from the connection.
type body struct {
	c *conn
	n int64 // bytes left
}

func (b *body) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.c.br.Read(p)
	b.n -= int64(n)
	if err != nil {
		b.c.broken = true
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	}
	if b.n == 0 {
		b.c.ctx.bodyRead()
		return n, io.EOF
	}
	return n, nil
}

func (b *body) Close() error { return nil }

// drain reads and drops what the handler left of the body, so the
// connection can carry the next request; false when too much is left
// (or it fails), and the connection must close.
func (b *body) drain() bool {
	if b.n <= 0 {
		return true
	}
	if b.n > maxPostHandlerRead || b.c.broken {
		return false
	}
	_, err := io.CopyN(io.Discard, b, b.n)
	return err == nil || errors.Is(err, io.EOF)
}
