// Package h1 serves HTTP/1.1 on the gateway's listeners with less
// work per request than net/http's server: no goroutine and read per
// request to watch the connection, no header clone, one buffered writer
// per connection. On a proxy that work is half of what a
// request costs, and it is what kept tandem behind HAProxy.
//
// It serves only the requests it fully understands: a strict subset of
// what net/http accepts (see parseHead). At the first request it does not,
// it hands the connection, bytes already read included, to a net/http
// server, which serves it to its end. So every unusual or hostile shape
// (chunked bodies, upgrades, Expect, HTTP/1.0, obs-fold, duplicate framing
// headers, oversized heads, garbage) meets net/http's parser and gets
// net/http's answer; the fast path never sees it. On TLS listeners the
// handshake is done here too, and a connection that negotiated h2 goes to
// net/http straight after it.
package h1

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemproxy/tandem/internal/bufpool"
)

// Server serves HTTP/1.1 connections accepted from one listener.
type Server struct {
	// Handler answers every request the fast path takes.
	//
	// Unlike net/http, the fast path reuses a request's Header map, the
	// strings behind its values and its URL for the connection's next
	// request once the handler returned (that is where most of its
	// allocations went). A handler must therefore not keep the request,
	// its Header or its URL past its return, in a goroutine or a struct
	// that outlives it, hijacked or not: copy what it needs (as the
	// websocket relay copies the fields of its access log line). The
	// race detector sees any breach as a race with the next request's
	// parse: TestRequestNotKept holds the gateway's handler to this.
	Handler http.Handler
	// Fallback serves the connections handed over; its Handler should
	// answer like Handler. Its timeouts and limits apply to them.
	Fallback *http.Server
	// MaxHeaderBytes bounds the request head the fast path reads; a larger
	// one goes to Fallback, which answers 431 past its own limit.
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds reading a request head (slowloris);
	// IdleTimeout bounds the wait for the next request on a kept-alive
	// connection.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// TLSConfig, when set, makes the listener's connections TLS: those
	// that negotiate HTTP/1.1 are served here, those that negotiate h2
	// are handed to Fallback right after the handshake (Fallback needs the
	// same TLSConfig, with "h2" in NextProtos, to serve them).
	TLSConfig *tls.Config
	// Log receives handler panics.
	Log *slog.Logger

	closing atomic.Bool
	mu      sync.Mutex
	ln      net.Listener
	conns   map[*conn]struct{}
	handoff *handoffListener
	served  chan struct{} // closed when Fallback's Serve returned
}

// log is the server's logger; a Server without one logs with slog's
// default rather than panic at its first message.
func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// ErrServerClosed is what Serve returns after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

// Serve accepts connections on ln until Shutdown or Close, serving each in
// its own goroutine. It always returns a non-nil error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.ln = ln
	s.conns = make(map[*conn]struct{})
	s.handoff = newHandoffListener(ln.Addr())
	s.served = make(chan struct{})
	s.mu.Unlock()

	go func() {
		defer close(s.served)
		if err := s.Fallback.Serve(s.handoff); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log().Error("fallback HTTP server stopped", "error", err)
		}
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait, as net/http does,
			// rather than spin or give up.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log().Warn("accept failed; retrying", "error", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := newConn(s, nc)
		if !s.track(c) {
			nc.Close()
			continue
		}
		go c.serve()
	}
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown stops accepting, closes idle connections, lets the requests in
// flight finish (their connections close after the answer) and returns
// when every connection is gone, or with ctx's error. The fallback server
// shuts down alongside.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	fb := make(chan error, 1)
	go func() { fb <- s.Fallback.Shutdown(ctx) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !s.closeIdle() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return <-fb
}

// closeIdle closes the connections waiting for a request and reports
// whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.nc.Close()
		}
	}
	return len(s.conns) == 0
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.closing.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.state.Store(stateClosed)
		c.nc.Close()
	}
	s.mu.Unlock()
	return s.Fallback.Close()
}

// handoffListener is the listener the fallback server serves: its
// connections are the ones the fast path handed over.
type handoffListener struct {
	addr   net.Addr
	ch     chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// give passes c to the fallback server; false if it is shut down.
func (l *handoffListener) give(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

// tlsPrefixConn is a bufpool.PrefixConn over TLS: net/http takes a
// connection with ConnectionState for a TLS one whose handshake is done,
// and sets each request's TLS from it (X-Forwarded-Proto, Secure cookies).
type tlsPrefixConn struct {
	*bufpool.PrefixConn
	tc *tls.Conn
}

func (c *tlsPrefixConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }
