package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/servertest"
)

// testClient is a client that dials loopback.
func testClient() *Client {
	d := &net.Dialer{}
	return New(func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	})
}

// testRequest sends a request of method (with body) through u to addr and returns
// the response body read to its end, or the error of the exchange.
func (u *Client) testRequest(addr, method string, resendable bool, body string) (string, error) {
	wr := &Request{Ctx: context.Background(), Method: method, Head: []byte(method + " / HTTP/1.1\r\nHost: app.test\r\n"),
		Connect: time.Second, Resendable: resendable, ContentLength: int64(len(body))}
	if body != "" {
		wr.Body = strings.NewReader(body)
	}
	now := time.Now()
	resp, err := u.RoundTrip(wr, addr, now, now.Add(2*time.Second))
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b), err
}

// idleTo returns how many idle connections u keeps to addr.
func (u *Client) idleTo(addr string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.idle[addr])
}

// TestPoolReuse: a connection whose response was read to its end goes
// back to the pool and carries the next request; one that cannot carry
// another (the server said close, the body was left unread, bytes follow
// the body) is closed instead.
func TestPoolReuse(t *testing.T) {
	tests := []struct {
		name string
		// answer writes the response to the n-th request.
		answer string
		body   string
		// unread: the body is closed before it was read.
		unread bool
		reused bool
	}{
		{name: "read to its end", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", body: "ok", reused: true},
		{name: "empty body", answer: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", reused: true},
		{name: "chunked", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", body: "ok", reused: true},
		{name: "Connection: close", answer: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", body: "ok"},
		{name: "body left unread", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", unread: true},
		{name: "bytes after the body", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n", body: "ok"},
		{name: "HTTP/1.0", answer: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", body: "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := servertest.New(t, func(c net.Conn, _ *servertest.Request, _ int) bool {
				_, err := io.WriteString(c, tt.answer)
				return err == nil
			})
			u := testClient()
			wr := &Request{Ctx: context.Background(), Method: "GET", Head: []byte("GET / HTTP/1.1\r\nHost: app.test\r\n"),
				Connect: time.Second, Resendable: true}
			for range 2 {
				now := time.Now()
				resp, err := u.RoundTrip(wr, srv.Addr(), now, now.Add(2*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				if !tt.unread {
					if b, err := io.ReadAll(resp.Body); err != nil || string(b) != tt.body {
						t.Fatalf("body %q, %v", b, err)
					}
				}
				resp.Body.Close()
			}
			want := 2
			if tt.reused {
				want = 1
			}
			if got := srv.Accepted(); got != want {
				t.Errorf("two requests took %d connections, want %d", got, want)
			}
		})
	}
}

// TestPoolOrderAndBounds: idle connections are reused last in first out;
// at most maxIdle are kept per server, and one idle longer than
// idleTimeout is closed rather than reused.
func TestPoolOrderAndBounds(t *testing.T) {
	srv := servertest.New(t, func(c net.Conn, req *servertest.Request, _ int) bool {
		return servertest.Answer(c, string(rune('0'+req.Conn)))
	})
	u := testClient()
	u.maxIdle = 2
	open := func() (*Request, func() string) {
		wr := &Request{Ctx: context.Background(), Method: "GET", Head: []byte("GET / HTTP/1.1\r\nHost: app.test\r\n"),
			Connect: time.Second, Resendable: true}
		now := time.Now()
		resp, err := u.RoundTrip(wr, srv.Addr(), now, now.Add(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return wr, func() string {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b)
		}
	}
	// Three exchanges at once: three connections.
	_, a := open()
	_, b := open()
	_, c := open()
	if got := a() + b() + c(); got != "123" {
		t.Fatalf("three exchanges at once: connections %q, want 123", got)
	}
	if n := u.idleTo(srv.Addr()); n != 2 {
		t.Errorf("%d idle connections kept, want maxIdle 2", n)
	}
	// The last one back (3) goes first, then 2; 1 was closed.
	_, x := open()
	_, y := open()
	_, z := open()
	if got := x() + y() + z(); got != "324" {
		t.Errorf("connections reused %q, want 3 then 2, then a new one (4)", got)
	}
	u.idleTimeout = 20 * time.Millisecond
	time.Sleep(40 * time.Millisecond)
	if got, err := u.testRequest(srv.Addr(), "GET", true, ""); err != nil || got != "5" {
		t.Errorf("after the idle timeout: connection %q (%v), want a new one (5)", got, err)
	}
	u.CloseIdle()
	if n := u.idleTo(srv.Addr()); n != 0 {
		t.Errorf("%d idle connections after closeIdle", n)
	}
	if got, _ := u.testRequest(srv.Addr(), "GET", true, ""); got != "6" {
		t.Errorf("after closeIdle: connection %q, want a new one (6)", got)
	}
}

// TestStaleConnection: the server closes a kept-alive connection while it
// is idle in the pool. A request that may be sent again goes on it and
// fails with ErrStale (nothing was processed: the caller may send it
// again); one that may not is sent on a connection checked first, so
// the close is found before anything is written, and a new one is dialed.
// A fresh connection that closes before an answer is not stale.
func TestStaleConnection(t *testing.T) {
	closed := make(chan struct{}, 8)
	srv := servertest.New(t, func(c net.Conn, req *servertest.Request, n int) bool {
		if strings.Contains(req.Head, "X-Hang-Up: 1") {
			c.Close()
			return false
		}
		servertest.Answer(c, "fine "+string(req.Body))
		// Keep-alive said nothing against reuse; close it anyway.
		c.Close()
		closed <- struct{}{}
		return false
	})
	u := testClient()
	prime := func() {
		t.Helper()
		if got, err := u.testRequest(srv.Addr(), "GET", true, ""); err != nil || got != "fine " {
			t.Fatalf("first request: %q %v", got, err)
		}
		<-closed
		if n := u.idleTo(srv.Addr()); n != 1 {
			t.Fatalf("%d idle connections, want the one the server closed", n)
		}
		// The server's FIN reaches the gateway's end of it.
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
			u.mu.Lock()
			alive := u.idle[srv.Addr()][0].alive()
			u.mu.Unlock()
			if !alive {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the connection the server closed still looks open")
			}
		}
	}

	prime()
	if _, err := u.testRequest(srv.Addr(), "GET", true, ""); !errors.Is(err, ErrStale) {
		t.Errorf("GET on a connection the server closed: %v, want ErrStale", err)
	}

	prime()
	got, err := u.testRequest(srv.Addr(), "POST", false, "once")
	if err != nil || got != "fine once" {
		t.Errorf("POST after the server closed the idle connection: %q %v, want it sent on a new connection", got, err)
	}
	if n := len(srv.Requests()); n != 3 {
		t.Errorf("the server got %d requests, want 3 (the stale GET never reached it)", n)
	}

	u.CloseIdle()
	wr := &Request{Ctx: context.Background(), Method: "GET", Head: []byte("GET / HTTP/1.1\r\nHost: app.test\r\nX-Hang-Up: 1\r\n"),
		Connect: time.Second, Resendable: true}
	now := time.Now()
	if _, err := u.RoundTrip(wr, srv.Addr(), now, now.Add(2*time.Second)); err == nil || errors.Is(err, ErrStale) {
		t.Errorf("a new connection closed before the answer: %v, want an error other than ErrStale", err)
	}
}
