package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/bufpool"
	"github.com/tandemproxy/tandem/internal/upstream"
)

// netHTTP is the exchanger of engine net/http: each try goes through
// net/http's http.Transport, its request writer, connection pool and
// response parser, rather than internal/upstream's. It keeps upstream's
// bounds (the group's connect timeout, the try's deadline for the
// response head, the head's size, the idle connections kept per server
// and for how long, timeouts.bodyIdle) and says what failed with
// upstream's errors, so that the proxy's rules read a try alike whatever
// the engine.
type netHTTP struct {
	t *http.Transport
	// upgrades sends requests to switch protocols, each on a connection
	// of its own that is never pooled, as upstream.Client.Upgrade does
	// (without keep-alives it adds no Connection: close to them).
	upgrades *http.Transport
}

// connectTimeoutKey is the context key of a try's connect timeout (the
// group's timeouts.connect), which the Transport's dial reads: net/http
// dials apart from the request's cancellation, keeping its values.
type connectTimeoutKey struct{}

func newNetHTTP(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *netHTTP {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true) // the servers speak HTTP/1.1, as to upstream.Client
	t := &http.Transport{
		Proxy: nil, // never one from the environment
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if d, ok := ctx.Value(connectTimeoutKey{}).(time.Duration); ok && d > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countedConn{Conn: c}, nil
		},
		MaxIdleConnsPerHost:    upstream.MaxIdlePerServer,
		IdleConnTimeout:        upstream.IdleTimeout,
		MaxResponseHeaderBytes: upstream.MaxResponseHead,
		// No Accept-Encoding of its own: the client's goes as it came, and
		// the body as the server sent it.
		DisableCompression: true,
		Protocols:          protocols,
		ReadBufferSize:     bufpool.Size,
		WriteBufferSize:    bufpool.Size,
	}
	upgrades := t.Clone()
	upgrades.DisableKeepAlives = true
	return &netHTTP{t: t, upgrades: upgrades}
}

// Errors of the net/http engine's own, each under upstream's word for it.
var (
	errHeadDeadline = fmt.Errorf("%w: no response head before the try's deadline", upstream.ErrTimeout)
	errBodyIdle     = fmt.Errorf("%w: the response body made no progress for timeouts.bodyIdle", upstream.ErrTimeout)
	errNotAsked     = errors.New("server switched protocols on a request that did not ask to")
	errNoSwitch     = errors.New("server answered 101 without switching protocols (no Connection: upgrade)")
)

// RoundTrip sends wr to addr through the Transport (see exchanger).
func (n *netHTTP) RoundTrip(wr *upstream.Request, addr string, now, headerDeadline time.Time) (*http.Response, error) {
	resp, x, err := n.exchange(wr, addr, now, headerDeadline)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body.Close()
		x.release()
		return nil, errNotAsked
	}
	resp.Body = &netBody{rc: resp.Body, x: x, idle: wr.BodyIdle}
	return resp, nil
}

// Upgrade sends wr, a request to switch protocols, through the Transport,
// which uses the connection for no other request after a 101. The
// relay then reads and writes the connection itself: the bytes the
// Transport read past the 101's head come first.
func (n *netHTTP) Upgrade(wr *upstream.Request, addr string, now, headerDeadline time.Time) (*http.Response, error) {
	resp, x, err := n.exchange(wr, addr, now, headerDeadline)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = &netBody{rc: resp.Body, x: x}
		return resp, nil
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok || x.conn == nil {
		resp.Body.Close()
		x.release()
		return nil, errNoSwitch
	}
	// The connection outlives the request: the client's leaving no longer
	// ends it (too late: the exchange is over).
	if !x.stopClient() {
		rwc.Close()
		x.release()
		return nil, context.Cause(wr.Ctx)
	}
	x.release()
	c := x.conn.Conn // the socket itself: the relay counts nothing
	if pre := readBuffered(rwc, c); len(pre) > 0 {
		c = &bufpool.PrefixConn{Conn: c, Pre: pre}
	}
	resp.Body = &upstream.Upgraded{Conn: c, Reader: bufpool.Reader(c)}
	return resp, nil
}

// CloseIdle closes the Transport's idle connections (after a reload).
func (n *netHTTP) CloseIdle() { n.t.CloseIdleConnections() }

// netTry is one exchange through the Transport: what its trace saw, and
// how the gateway ends it early (a deadline, an abandon, for an upgrade
// the client's leaving).
type netTry struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	// stopClient stops watching the client (upgrades only: their context
	// is not the client's), and reports false if it left first.
	stopClient func() bool
	// timer ends the try at its deadline for the response head, from the
	// moment it has a connection (the dial has its own bound).
	timer    *time.Timer
	conn     *countedConn
	reused   bool
	answered atomic.Bool
	// readBefore is what was read of conn before this try.
	readBefore int64
	// informational counts the 1xx answers before the real one; tooMany:
	// there were more than upstream.MaxInformational (the Transport may
	// report the request's write, cut by the close, instead).
	informational int
	tooMany       atomic.Bool

	// mu guards the try's registration as waiting on its server (w),
	// which a bodiless try makes only once it waited upstream.FastAnswer,
	// as upstream.Client's does; ended: the exchange is over, make none.
	mu    sync.Mutex
	w     *backend.Waiter
	ended bool
}

// wait registers the try as waiting for its head from wr's server, unless
// the exchange is over; abandoned, its context ends.
func (x *netTry) wait(wr *upstream.Request) *backend.Waiter {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.ended && x.w == nil {
		x.w = wr.Server.Wait(wr.Gen, wr.Pinned, wr.StallAfter, wr.OnStall, func() { x.cancel(upstream.ErrAbandoned) })
	}
	return x.w
}

// end ends the try's wait, if it made one: head says whether a head came
// (a try answered before it registered counts as an answer at now, its
// start, as upstream.Client's).
func (x *netTry) end(wr *upstream.Request, now time.Time, head bool) {
	x.mu.Lock()
	x.ended = true
	w := x.w
	x.mu.Unlock()
	switch {
	case wr.Server == nil:
	case w != nil:
		wr.Server.Done(w, head)
	case head:
		wr.Server.Answered(now)
	}
}

// abandoned reports whether the try's server abandoned it.
func (x *netTry) abandoned() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.w.Abandoned()
}

// release frees the try's context; its connection, if any, is no longer
// the try's.
func (x *netTry) release() {
	x.stopClient()
	x.cancel(nil)
}

// exchange makes the try: the request is wr's head read back by net/http
// (outgoing), sent by the Transport; a try that waits for its head is
// registered with its server, which can abandon it.
func (n *netHTTP) exchange(wr *upstream.Request, addr string, now, headerDeadline time.Time) (*http.Response, *netTry, error) {
	base := wr.Ctx
	if wr.Upgrade {
		// After a 101 the connection outlives the request: the client's
		// leaving ends the try only until the head came.
		base = context.WithoutCancel(wr.Ctx)
	}
	ctx, cancel := context.WithCancelCause(context.WithValue(base, connectTimeoutKey{}, wr.Connect))
	x := &netTry{ctx: ctx, cancel: cancel, stopClient: func() bool { return true }}
	if wr.Upgrade {
		x.stopClient = context.AfterFunc(wr.Ctx, func() { cancel(context.Cause(wr.Ctx)) })
	}
	var body *sentBody
	if wr.Body != nil {
		body = &sentBody{r: wr.Body, done: make(chan struct{})}
	}
	trace := &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			// Once per connection the Transport tries (it sends a request
			// again by itself on a new one when a kept-alive one was closed).
			x.conn, _ = info.Conn.(*countedConn)
			x.reused = info.Reused
			if x.conn != nil {
				x.readBefore = x.conn.read.Load()
			}
			if x.timer != nil {
				x.timer.Stop()
			}
			x.timer = time.AfterFunc(time.Until(headerDeadline), func() { cancel(errHeadDeadline) })
		},
		GotFirstResponseByte: func() { x.answered.Store(true) },
		Got1xxResponse: func(int, textproto.MIMEHeader) error {
			// Given this hook, the Transport bounds each head by
			// MaxResponseHeaderBytes, and the count of 1xx answers is ours.
			if x.informational++; x.informational > upstream.MaxInformational {
				x.tooMany.Store(true)
				return upstream.ErrTooManyInformational
			}
			return nil
		},
	}
	req, err := outgoing(httptrace.WithClientTrace(ctx, trace), wr, addr, body)
	if err != nil {
		x.release()
		return nil, nil, err
	}
	var late *time.Timer
	if wr.Server != nil {
		// A try with a body waits from the start; a bodiless one once it
		// waited FastAnswer (as upstream.Client's, which most answers beat).
		if fast := now.Add(upstream.FastAnswer); wr.Body != nil || !fast.Before(headerDeadline) {
			if x.wait(wr).Abandoned() {
				// Before the Transport had the request: it went nowhere.
				x.end(wr, now, false)
				x.release()
				return nil, nil, upstream.ErrUnsent
			}
		} else {
			late = time.AfterFunc(time.Until(fast), func() { x.wait(wr) })
		}
	}
	t := n.t
	if wr.Upgrade {
		t = n.upgrades
	}
	resp, err := t.RoundTrip(req)
	if x.timer != nil {
		x.timer.Stop()
	}
	if late != nil {
		late.Stop()
	}
	if err == nil && context.Cause(ctx) != nil {
		// The head came as the try was ended: its body cannot be read.
		resp.Body.Close()
		err = context.Cause(ctx)
	}
	x.end(wr, now, err == nil)
	if err != nil {
		if body != nil {
			body.settle(wr.Body)
		}
		err = x.failed(wr, err)
		x.release()
		return nil, nil, err
	}
	return resp, x, nil
}

// failed names what made the try fail, in upstream's words.
func (x *netTry) failed(wr *upstream.Request, err error) error {
	switch {
	case isDialError(err):
		return err
	case wr.Ctx.Err() != nil:
		return wr.Ctx.Err()
	case x.abandoned():
		if errors.Is(err, upstream.ErrAbandoned) {
			return err
		}
		return fmt.Errorf("%w: %w", upstream.ErrAbandoned, err)
	case x.tooMany.Load() && !errors.Is(err, upstream.ErrTooManyInformational):
		return fmt.Errorf("%w: %w", upstream.ErrTooManyInformational, err)
	case x.conn != nil && x.conn.read.Load()-x.readBefore >= upstream.MaxResponseHead:
		// No head came, and as much as one may hold was read: the
		// Transport's bound ended the try.
		return fmt.Errorf("%w: %w", upstream.ErrHeadTooLarge, err)
	case errors.Is(err, upstream.ErrTimeout):
		return err
	case isTimeout(err):
		return fmt.Errorf("%w: %w", upstream.ErrTimeout, err)
	case x.reused && !x.answered.Load():
		// A kept-alive connection closed before any of an answer came
		// (one the Transport did not send again by itself).
		return fmt.Errorf("%w: %w", upstream.ErrStale, err)
	}
	return err
}

// outgoing is wr as the Transport sends it to addr: the head the
// outbound writer rendered, read back by http.ReadRequest (FuzzOutbound
// holds the writer to what that reads: the same method, target, Host and
// header fields), with the try's epoch and body. net/http frames the body
// itself, as upstream's Request.Write does.
func outgoing(ctx context.Context, wr *upstream.Request, addr string, body *sentBody) (*http.Request, error) {
	br := bufpool.Reader(io.MultiReader(bytes.NewReader(wr.Head), strings.NewReader("\r\n")))
	in, err := http.ReadRequest(br)
	bufpool.PutReader(br)
	if err != nil {
		// The outbound writer checks what it writes as net/http does: this
		// would be a bug of the gateway's, and goes to no server.
		return nil, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	req := in.WithContext(ctx)
	req.RequestURI, req.RemoteAddr, req.Close = "", "", false
	req.URL.Scheme, req.URL.Host = "http", addr
	h := req.Header
	if wr.HasEpoch {
		h["X-Tandem-Epoch"] = []string{strconv.FormatUint(wr.Epoch, 10)}
	}
	if _, ok := h["User-Agent"]; !ok {
		// Say nothing rather than let net/http name itself.
		h["User-Agent"] = []string{""}
	}
	req.Body, req.ContentLength = nil, 0
	if body != nil {
		req.Body, req.ContentLength = body, wr.ContentLength
	}
	return req, nil
}

// sentBody is a try's body as the Transport reads it, in a goroutine of
// its own that may outlive the try (net/http closes the body when it is
// done with it).
type sentBody struct {
	r    io.Reader
	done chan struct{}
	once sync.Once
}

func (b *sentBody) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *sentBody) Close() error {
	b.once.Do(func() { close(b.done) })
	return nil
}

// settle follows a failed try: a streamed body the Transport still reads
// (its read waits on the client) goes to no other try, which would read
// it alongside: it counts as read (replayBody.replayable).
func (b *sentBody) settle(r io.Reader) {
	select {
	case <-b.done:
	default:
		if tb, ok := r.(*trackedBody); ok {
			tb.body.read.Store(true)
		}
	}
}

// netBody is a response body read through the Transport: each wait for
// more of it is bounded by timeouts.bodyIdle (0: unbounded), and the
// client's leaving ends it (the try's context is the client's).
type netBody struct {
	rc    io.ReadCloser
	x     *netTry
	idle  time.Duration
	timer *time.Timer
}

func (b *netBody) Read(p []byte) (int, error) {
	if b.idle > 0 {
		if b.timer == nil {
			b.timer = time.AfterFunc(b.idle, func() { b.x.cancel(errBodyIdle) })
		} else {
			b.timer.Reset(b.idle)
		}
	}
	n, err := b.rc.Read(p)
	if b.timer != nil {
		b.timer.Stop()
	}
	if err != nil && err != io.EOF && errors.Is(context.Cause(b.x.ctx), errBodyIdle) {
		err = errBodyIdle
	}
	return n, err
}

// Close closes the body: read to its end, its connection went back to the
// Transport's pool already.
func (b *netBody) Close() error {
	if b.timer != nil {
		b.timer.Stop()
	}
	err := b.rc.Close()
	b.x.release()
	return err
}

// readBuffered returns what the Transport read of c past a 101's head
// (rwc is the 101's body), which only rwc can give: it hands out those
// bytes, and nothing of the socket while the read deadline is in the past.
func readBuffered(rwc io.Reader, c net.Conn) []byte {
	c.SetReadDeadline(aLongTimeAgo)
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, bufpool.Size) // the Transport's ReadBufferSize
	n, _ := rwc.Read(buf)
	if n == 0 {
		return nil
	}
	return bytes.Clone(buf[:n])
}

// countedConn is a connection to a server through the Transport, with the
// bytes read of it counted: a try that failed having read more than a
// head may hold was ended by the Transport's bound on heads, whatever
// error it reports (the request's write, which the close cut, may win).
type countedConn struct {
	net.Conn
	read atomic.Int64
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// aLongTimeAgo is a deadline in the past, to have a read return at once.
var aLongTimeAgo = time.Unix(1, 0)
