package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestRetry holds the one retry rule, which plain requests and upgrades
// share, to its cases.
func TestRetry(t *testing.T) {
	refused := &dialError{err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	stale := fmt.Errorf("%w: %w", errStale, io.EOF)
	abandoned := fmt.Errorf("%w: %w", errAbandoned, errTimeout)
	local := &dialError{err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.EMFILE}}
	timeout := fmt.Errorf("%w: %w", errTimeout, errors.New("i/o timeout"))
	tests := []struct {
		name string
		f    failedTry
		want verdict
	}{
		// Nothing was sent.
		{"dial error, idempotent", failedTry{err: refused, idempotent: true, replayable: true}, next},
		{"dial error, POST with a streamed body", failedTry{err: refused}, next},
		{"dial error, the deadline passed", failedTry{err: refused, expired: true}, next},
		{"the decision moved before the try", failedTry{err: errRepick}, repick},
		{"no time left for a try", failedTry{err: errNoTimeLeft, idempotent: true, replayable: true, expired: true}, giveUp},
		// Sent.
		{"sent GET, reset", failedTry{err: reset, idempotent: true, replayable: true}, next},
		{"sent GET, timeout", failedTry{err: timeout, idempotent: true, replayable: true}, next},
		{"sent GET, the deadline passed", failedTry{err: timeout, idempotent: true, replayable: true, expired: true}, giveUp},
		{"sent POST without a body", failedTry{err: reset, replayable: true}, giveUp},
		{"sent POST with a body", failedTry{err: reset}, giveUp},
		{"sent keyed POST, body buffered", failedTry{err: reset, idempotent: true, replayable: true}, next},
		{"sent keyed POST, body streamed and read", failedTry{err: reset, idempotent: true}, giveUp},
		{"sent PUT, body buffered", failedTry{err: timeout, idempotent: true, replayable: true}, next},
		{"sent PUT, body too large to buffer, read", failedTry{err: timeout, idempotent: true}, giveUp},
		{"abandoned GET", failedTry{err: abandoned, idempotent: true, replayable: true}, next},
		{"abandoned POST", failedTry{err: abandoned, replayable: true}, giveUp},
		// A kept-alive connection the server had closed.
		{"stale connection, GET", failedTry{err: stale, idempotent: true, replayable: true}, again},
		{"stale connection, keyed POST, buffered", failedTry{err: stale, idempotent: true, replayable: true}, again},
		{"stale connection, POST", failedTry{err: stale, replayable: true}, giveUp},
		{"stale connection, PUT, body not replayable", failedTry{err: stale, idempotent: true}, giveUp},
		{"stale connection, the deadline passed", failedTry{err: stale, idempotent: true, replayable: true, expired: true}, giveUp},
		// No server's doing.
		{"client gone, GET", failedTry{err: reset, idempotent: true, replayable: true, clientGone: true}, giveUp},
		{"client gone before a dial failed", failedTry{err: refused, idempotent: true, replayable: true, clientGone: true}, giveUp},
		{"client gone, stale connection", failedTry{err: stale, idempotent: true, replayable: true, clientGone: true}, giveUp},
		{"gateway out of fds", failedTry{err: local, idempotent: true, replayable: true}, giveUp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retry(tt.f); got != tt.want {
				t.Errorf("retry(%+v) = %v, want %v", tt.f, got, tt.want)
			}
		})
	}
}

// closedAddr returns a loopback address nothing listens on: a dial is refused.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// backupServer answers a plain request with "backup" and its body, and a
// request to upgrade with 101 (keeping the connection).
func backupServer(t *testing.T) *rawServer {
	return newRawServer(t, func(c net.Conn, req *rawRequest, _ int) bool {
		if req.header("Upgrade") != "" {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			return false
		}
		return answer(c, "backup "+string(req.body))
	})
}

// exchangeVia sends a raw request through front on a connection of its own and
// returns the status line's code and the body.
func exchangeVia(t *testing.T, front string, raw string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer from the gateway: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, ""
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRetryOnSockets: the rule, through Proxy.send for plain requests and
// for websocket handshakes, with a master that fails in the ways it can
// and a backup that answers.
func TestRetryOnSockets(t *testing.T) {
	resetAfterRead := func(c net.Conn, _ *rawRequest, _ int) bool { reset(c); return false }
	closeAfterRead := func(c net.Conn, _ *rawRequest, _ int) bool { c.Close(); return false }
	const handshake = "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	tests := []struct {
		name    string
		master  func(c net.Conn, req *rawRequest, n int) bool // nil: refuses connections
		request string
		group   string
		status  int
		body    string
		// replayed: the backup got the request.
		replayed bool
	}{
		{name: "GET, refused", request: "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
			status: 200, body: "backup ", replayed: true},
		{name: "GET, reset once sent", master: resetAfterRead, request: "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
			status: 200, body: "backup ", replayed: true},
		{name: "GET, closed once sent", master: closeAfterRead, request: "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
			status: 200, body: "backup ", replayed: true},
		{name: "POST without a body, refused", request: "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\n\r\n",
			status: 200, body: "backup ", replayed: true},
		{name: "POST without a body, reset once sent", master: resetAfterRead,
			request: "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\n\r\n", status: 502, body: "Bad Gateway\n"},
		{name: "POST, reset once sent", master: resetAfterRead,
			request: "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\n\r\ndata", status: 502, body: "Bad Gateway\n"},
		{name: "keyed POST, reset once sent", master: resetAfterRead,
			request: "POST / HTTP/1.1\r\nHost: app.test\r\nIdempotency-Key: k1\r\nContent-Length: 4\r\n\r\ndata",
			status:  200, body: "backup data", replayed: true},
		{name: "PUT, body buffered, reset once sent", master: resetAfterRead,
			request: "PUT / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\n\r\ndata",
			status:  200, body: "backup data", replayed: true},
		{name: "PUT, body larger than the buffer, reset once sent", master: resetAfterRead, group: "    retry: {bufferBytes: 2}\n",
			request: "PUT / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\n\r\ndata", status: 502, body: "Bad Gateway\n"},
		{name: "websocket handshake, refused", request: handshake, status: 101, replayed: true},
		{name: "websocket handshake, reset once sent", master: resetAfterRead, request: handshake, status: 101, replayed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			master := closedAddr(t)
			if tt.master != nil {
				master = newRawServer(t, tt.master).addr()
			}
			backup := backupServer(t)
			h := newHarness(t, tt.group, master, backup.addr())
			front := h.serve(t)
			status, body := exchangeVia(t, front.Listener.Addr().String(), tt.request)
			if status != tt.status || body != tt.body {
				t.Errorf("got %d %q, want %d %q", status, body, tt.status, tt.body)
			}
			if got := len(backup.requests()) > 0; got != tt.replayed {
				t.Errorf("backup got the request: %v, want %v", got, tt.replayed)
			}
		})
	}
}
