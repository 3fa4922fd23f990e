package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/servertest"
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

// backupServer answers a plain request with "backup" and its body, and a
// request to upgrade with 101 (keeping the connection).
func backupServer(t *testing.T) *servertest.Server {
	return servertest.New(t, func(c net.Conn, req *servertest.Request, _ int) bool {
		if req.Header("Upgrade") != "" {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			return false
		}
		return servertest.Answer(c, "backup "+string(req.Body))
	})
}

// exchangeVia sends a raw request through front on a connection of its own and
// returns the status line's code and the body.
func exchangeVia(t *testing.T, front string, raw string) (int, string) {
	t.Helper()
	resp, body := exchangeHeader(t, front, raw)
	return resp.StatusCode, body
}

// dialFront connects to front, the whole exchange bounded by 5s; the
// connection closes as the test ends.
func dialFront(t *testing.T, front string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

// exchangeHeader is exchangeVia with the whole response.
func exchangeHeader(t *testing.T, front string, raw string) (*http.Response, string) {
	t.Helper()
	c := dialFront(t, front)
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer from the gateway: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, ""
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestRetryOnSockets: the rule, through Proxy.send for plain requests and
// for websocket handshakes, with a master that fails in the ways it can
// and a backup that answers.
func TestRetryOnSockets(t *testing.T) {
	resetAfterRead := func(c net.Conn, _ *servertest.Request, _ int) bool { servertest.Reset(c); return false }
	closeAfterRead := func(c net.Conn, _ *servertest.Request, _ int) bool { c.Close(); return false }
	const handshake = "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	tests := []struct {
		name    string
		master  func(c net.Conn, req *servertest.Request, n int) bool // nil: refuses connections
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
	forEngines(t, func(t *testing.T, engine string) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				master := servertest.ClosedAddr(t)
				if tt.master != nil {
					master = servertest.New(t, tt.master).Addr()
				}
				backup := backupServer(t)
				h := newEngineHarness(t, engine, tt.group, master, backup.Addr())
				front := h.serve(t)
				status, body := exchangeVia(t, front.Listener.Addr().String(), tt.request)
				if status != tt.status || body != tt.body {
					t.Errorf("got %d %q, want %d %q", status, body, tt.status, tt.body)
				}
				if got := len(backup.Requests()) > 0; got != tt.replayed {
					t.Errorf("backup got the request: %v, want %v", got, tt.replayed)
				}
			})
		}
	})
}

// TestReplayBody: what each try of a request is given as its body, and
// whether another try could send it again.
func TestReplayBody(t *testing.T) {
	const limit = 8
	tests := []struct {
		name   string
		body   io.ReadCloser
		length int64
		idem   bool
		// buffered: every try gets the whole body.
		buffered bool
	}{
		{name: "no body", body: nil, buffered: true},
		{name: "http.NoBody", body: http.NoBody, buffered: true},
		{name: "idempotent, fits", body: io.NopCloser(strings.NewReader("12345")), length: 5, idem: true, buffered: true},
		{name: "idempotent, unknown length, fits", body: io.NopCloser(strings.NewReader("12345")), length: -1, idem: true, buffered: true},
		{name: "idempotent, unknown length, too large", body: io.NopCloser(strings.NewReader("0123456789abc")), length: -1, idem: true},
		{name: "idempotent, declared too large", body: io.NopCloser(strings.NewReader("0123456789abc")), length: 13, idem: true},
		{name: "not idempotent", body: io.NopCloser(strings.NewReader("12345")), length: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want string
			if tt.body != nil && tt.body != http.NoBody {
				b, _ := io.ReadAll(tt.body)
				want = string(b)
				tt.body = io.NopCloser(strings.NewReader(want))
			}
			rb, err := newReplayBody(tt.body, tt.length, tt.idem, limit)
			if err != nil {
				t.Fatal(err)
			}
			for try := range 2 {
				if !rb.replayable() {
					if tt.buffered || try == 0 {
						t.Fatalf("try %d: not replayable", try)
					}
					return // a streamed body read once is gone: as expected
				}
				r, again := rb.next()
				if want == "" {
					if r != nil || !again {
						t.Fatalf("a request without a body got one (%v), or cannot be sent again (%v)", r != nil, again)
					}
					continue
				}
				if again != tt.buffered {
					t.Errorf("next says it can be sent again: %v, want it when buffered (%v)", again, tt.buffered)
				}
				if !rb.replayable() {
					t.Errorf("try %d: not replayable before a byte was read", try)
				}
				got, _ := io.ReadAll(r)
				if string(got) != want {
					t.Errorf("try %d sent %q, want %q", try, got, want)
				}
				if rb.replayable() != tt.buffered {
					t.Errorf("try %d: replayable after it was read: %v, want %v", try, rb.replayable(), tt.buffered)
				}
			}
			if !tt.buffered && want != "" {
				t.Error("a streamed body was replayed")
			}
		})
	}
	t.Run("client's body fails", func(t *testing.T) {
		cut := errors.New("cut off")
		rb, err := newReplayBody(io.NopCloser(io.MultiReader(strings.NewReader("12"), iotest.ErrReader(cut))), -1, false, limit)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := rb.next()
		if _, err := io.ReadAll(r); !errors.Is(err, cut) {
			t.Fatalf("read %v", err)
		}
		if ce := rb.clientErr.Load(); ce == nil || !errors.Is(*ce, cut) {
			t.Errorf("clientErr %v, want the client's error", ce)
		}
	})
}

// TestSendOnSockets: Proxy.send through a front server, with a master
// that closes kept-alive connections, answers slowly or never, and a
// client that leaves or sends too much. blamed: the master was counted
// as failing (passive maxFails is 1: one failure takes it down).
func TestSendOnSockets(t *testing.T) {
	slow := func(d time.Duration) func(c net.Conn, req *servertest.Request, n int) bool {
		return func(c net.Conn, req *servertest.Request, _ int) bool {
			time.Sleep(d)
			return servertest.Answer(c, "master "+string(req.Body))
		}
	}
	// closeIdle answers, then closes the connection as an idle one.
	closeIdle := func(c net.Conn, req *servertest.Request, _ int) bool {
		servertest.Answer(c, "master "+string(req.Body))
		c.Close()
		return false
	}
	// silent never answers, until the gateway hangs up.
	silent := func(c net.Conn, _ *servertest.Request, _ int) bool {
		io.Copy(io.Discard, c)
		c.Close()
		return false
	}
	tests := []struct {
		name   string
		master func(c net.Conn, req *servertest.Request, n int) bool
		group  string
		// first, when set, is sent before request, and answered (a stale
		// connection: the second request goes on the connection the
		// master closed after it answered the first, which errs as stale
		// whether or not the close reached the gateway first; the POST
		// that must not go there is TestStaleConnection's, in upstream).
		first   string
		request string
		// leave: the client hangs up after this long.
		leave      time.Duration
		backupDown bool // the backup is down before the request
		status     int  // 0: no answer (the client left)
		body       string
		replayed   bool // the backup got the request
		blamed     bool
		masterGot  int // requests the master read (after first)
		masterConn int // connections it accepted
	}{
		{name: "stale kept-alive connection, GET sent again on a new one", master: closeIdle,
			first: "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n", request: "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
			status: 200, body: "master ", masterGot: 1, masterConn: 2},
		{name: "stale kept-alive connection, keyed POST sent again with its body", master: closeIdle,
			first:   "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
			request: "POST / HTTP/1.1\r\nHost: app.test\r\nIdempotency-Key: k\r\nContent-Length: 4\r\n\r\ndata",
			status:  200, body: "master data", masterGot: 1, masterConn: 2},
		{name: "slow master, GET within the per-try timeout's reach of the backup", master: slow(300 * time.Millisecond),
			group:   "    retry: {perTryTimeout: 100ms}\n    passive: {maxFails: 1}\n",
			request: "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
			status:  200, body: "backup ", replayed: true, blamed: true, masterGot: 1, masterConn: 1},
		{name: "slow master, its backup down: the last server is not ejected for a timeout", master: slow(300 * time.Millisecond),
			group:      "    retry: {perTryTimeout: 100ms}\n    passive: {maxFails: 1}\n",
			request:    "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
			backupDown: true, status: 504, body: "Gateway Timeout\n", masterGot: 1, masterConn: 1},
		{name: "slow master, POST not replayed", master: slow(300 * time.Millisecond),
			group:   "    retry: {perTryTimeout: 100ms}\n    passive: {maxFails: 1}\n",
			request: "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\n\r\ndata",
			status:  504, body: "Gateway Timeout\n", blamed: true, masterGot: 1, masterConn: 1},
		{name: "slow master, the response timeout spans the tries", master: slow(300 * time.Millisecond),
			group:   "    timeouts: {response: 150ms}\n    passive: {maxFails: 1, noProgress: 0s}\n",
			request: "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
			status:  504, body: "Gateway Timeout\n", blamed: true, masterGot: 1, masterConn: 1},
		{name: "client leaves while the master thinks", master: silent,
			group:   "    passive: {maxFails: 1, noProgress: 0s}\n",
			request: "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n", leave: 100 * time.Millisecond,
			masterGot: 1, masterConn: 1},
		{name: "client's body larger than allowed", master: slow(0),
			group:   "    maxBodyBytes: 8\n    retry: {bufferBytes: 4}\n    passive: {maxFails: 1}\n",
			request: "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
			status:  413, body: "Request Entity Too Large\n", masterConn: 1},
		{name: "PUT of unknown length, buffered, replayed whole", master: func(c net.Conn, _ *servertest.Request, _ int) bool { servertest.Reset(c); return false },
			request: "PUT / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
			status:  200, body: "backup abcde", replayed: true, masterGot: 1, masterConn: 1},
	}
	forEngines(t, func(t *testing.T, engine string) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				master, backup := servertest.New(t, tt.master), backupServer(t)
				h := newEngineHarness(t, engine, tt.group, master.Addr(), backup.Addr())
				if tt.backupDown {
					h.group.Servers[1].MarkDown("test: down")
				}
				front := h.serve(t)
				c, err := net.Dial("tcp", front.Listener.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				if tt.first != "" {
					io.WriteString(c, tt.first)
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					h.finished(t)
				}
				io.WriteString(c, tt.request)
				if tt.leave > 0 {
					time.Sleep(tt.leave)
					c.Close()
				} else {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(resp.Body)
					if resp.StatusCode != tt.status || string(b) != tt.body {
						t.Errorf("got %d %q, want %d %q", resp.StatusCode, b, tt.status, tt.body)
					}
				}
				h.finished(t)
				if got := len(backup.Requests()) > 0; got != tt.replayed {
					t.Errorf("backup got the request: %v, want %v", got, tt.replayed)
				}
				if got := h.group.Servers[0].State() == backend.Down; got != tt.blamed {
					t.Errorf("master counted as failing: %v, want %v", got, tt.blamed)
				}
				got := len(master.Requests())
				if tt.first != "" {
					got--
				}
				// A connection the gateway dialed may wait in the
				// listener's queue a moment before the server counts it.
				for deadline := time.Now().Add(time.Second); master.Accepted() < tt.masterConn && time.Now().Before(deadline); {
					time.Sleep(5 * time.Millisecond)
				}
				if got != tt.masterGot || master.Accepted() != tt.masterConn {
					t.Errorf("master read %d requests on %d connections, want %d on %d", got, master.Accepted(), tt.masterGot, tt.masterConn)
				}
			})
		}
	})
}
