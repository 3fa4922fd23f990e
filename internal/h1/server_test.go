package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/bufpool"
)

// servedBy is the response header telling which server ran the handler:
// "fast" when the ResponseWriter is the fast path's, "fallback" when it is
// net/http's.
const servedBy = "X-Served-By"

// ioTimeout bounds every read and write of the tests' clients, so a bug
// cannot hang the suite.
const ioTimeout = 5 * time.Second

type testServer struct {
	*Server
	addr string
	done chan error // Serve's result
}

// startServer serves h on a loopback listener with the fast path and a
// net/http fallback running the same handler; opts adjust the server
// before it starts. As in the gateway, the fallback gets the same limits
// and timeouts. The server is closed at the end of the test.
func startServer(t testing.TB, h http.HandlerFunc, opts ...func(*Server)) *testServer {
	t.Helper()
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(*response); ok {
			w.Header().Set(servedBy, "fast")
		} else {
			w.Header().Set(servedBy, "fallback")
		}
		h(w, r)
	})
	s := &Server{
		Handler:           wrapped,
		Fallback:          &http.Server{Handler: wrapped},
		MaxHeaderBytes:    64 << 10,
		ReadHeaderTimeout: 2 * time.Second,
		IdleTimeout:       5 * time.Second,
		Log:               slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		o(s)
	}
	s.Fallback.MaxHeaderBytes = s.MaxHeaderBytes
	s.Fallback.ReadHeaderTimeout = s.ReadHeaderTimeout
	s.Fallback.IdleTimeout = s.IdleTimeout
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case err := <-ts.done:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(ioTimeout):
			t.Error("Serve did not return after Close")
		}
	})
	return ts
}

// handler is the handler most tests serve, by path:
//
//	/echo      the request body back
//	/ignore    "ignored", the body left unread
//	/cl        "hello" with a Content-Length set by the handler
//	/big       10 KiB without a length, in uneven pieces (chunked)
//	/big1      the same in one Write
//	/short     a declared 10 bytes, 5 written
//	/close     "bye" with Connection: close set by the handler
//	/flush     Flush, then "hello"
//	/204, /304 those codes, no body
//	/trailer   "hello" with the trailer X-Sum: 42 set after the body
//	/html      "<html>..." without a Content-Type
//	/split     a header value with CRLF in it
//	/hints     103 Early Hints, then 200
//	/abort     a declared 100 bytes, 10 written (not flushed), then
//	           ErrAbortHandler
//	/slow      "done" after 300 ms
//	anything   "hello " + the path
func handler(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/echo":
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write(b)
	case "/ignore":
		io.WriteString(w, "ignored")
	case "/cl":
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	case "/big":
		for b := bigBody; len(b) > 0; {
			n := min(len(b), 700)
			w.Write(b[:n])
			b = b[n:]
		}
	case "/big1":
		w.Write(bigBody)
	case "/short":
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "hello")
	case "/close":
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	case "/flush":
		w.(http.Flusher).Flush()
		io.WriteString(w, "hello")
	case "/204":
		w.Header().Set("Content-Length", "5")
		w.WriteHeader(http.StatusNoContent)
		if _, err := io.WriteString(w, "hello"); err != http.ErrBodyNotAllowed {
			panic(fmt.Sprintf("Write after 204: %v, want ErrBodyNotAllowed", err))
		}
	case "/304":
		w.Header().Set("ETag", `"v1"`)
		w.WriteHeader(http.StatusNotModified)
	case "/trailer":
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "hello")
		w.Header().Set("X-Sum", "42")
	case "/html":
		io.WriteString(w, "<html><body>hi</body></html>")
	case "/split":
		w.Header().Set("X-Evil", "a\r\nSet-Cookie: pwned=1")
		io.WriteString(w, "ok")
	case "/hints":
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "ok")
	case "/abort":
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "0123456789")
		panic(http.ErrAbortHandler)
	case "/slow":
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "done")
	default:
		io.WriteString(w, "hello "+r.URL.Path)
	}
}

var bigBody = func() []byte {
	b := make([]byte, 10<<10)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}()

// client is a raw connection to the server.
type client struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func (s *testServer) dial(t *testing.T) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *client) write(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// readResponse reads one response to a request of method, body included.
func (c *client) readResponse(method string) (*http.Response, []byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body, err
}

// read is readResponse, failing the test on an error.
func (c *client) read(method string) (*http.Response, string) {
	c.t.Helper()
	resp, body, err := c.readResponse(method)
	if err != nil {
		c.t.Fatalf("reading the response: %v", err)
	}
	return resp, string(body)
}

// get sends a GET for path and checks a 200 with body from the
// server named (fast or fallback).
func (c *client) get(path, by string) {
	c.t.Helper()
	c.write("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := c.read("GET")
	check(c.t, resp, body, 200, by, "hello "+path)
}

func check(t *testing.T, resp *http.Response, body string, code int, by, wantBody string) {
	t.Helper()
	if resp.StatusCode != code {
		t.Errorf("status %d, want %d (body %q)", resp.StatusCode, code, body)
	}
	if got := resp.Header.Get(servedBy); got != by {
		t.Errorf("served by %q, want %q", got, by)
	}
	if body != wantBody {
		t.Errorf("body %q, want %q", short([]byte(body)), short([]byte(wantBody)))
	}
}

// closedWithin waits for the server to close the connection (EOF or
// reset) and fails if it has not within d; anything read before is
// dropped. It returns how long it waited.
func (c *client) closedWithin(d time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	c.nc.SetReadDeadline(start.Add(d))
	_, err := io.Copy(io.Discard, c.br)
	waited := time.Since(start)
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, syscall.ECONNRESET):
	case errors.As(err, &ne) && ne.Timeout():
		c.t.Fatalf("connection still open after %v", d)
	default:
		c.t.Fatalf("reading to the close: %v", err)
	}
	return waited
}

func TestKeepAlive(t *testing.T) {
	s := startServer(t, handler)
	c := s.dial(t)
	for i := range 100 {
		c.write(fmt.Sprintf("GET /req/%d HTTP/1.1\r\nHost: x\r\n\r\n", i))
		resp, body := c.read("GET")
		check(t, resp, body, 200, "fast", fmt.Sprintf("hello /req/%d", i))
		if resp.Close {
			t.Fatalf("request %d: the server closes the connection", i)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

func TestPipelining(t *testing.T) {
	s := startServer(t, handler)
	c := s.dial(t)
	c.write("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"hello /1", "hello /2", "abc", "hello /3"} {
		resp, body := c.read("GET")
		check(t, resp, body, 200, "fast", want)
	}

	// A burst many times the reader's buffer: heads and bodies straddle
	// its end.
	var burst strings.Builder
	var want []string
	for i := range 60 {
		if i%3 == 1 {
			b := strings.Repeat(strconv.Itoa(i), 40+i)
			fmt.Fprintf(&burst, "POST /echo HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\nContent-Length: %d\r\n\r\n%s", strings.Repeat("p", 3*i), len(b), b)
			want = append(want, b)
			continue
		}
		fmt.Fprintf(&burst, "GET /burst/%d HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", i, strings.Repeat("p", 5*i))
		want = append(want, fmt.Sprintf("hello /burst/%d", i))
	}
	if burst.Len() < 3*bufpool.Size {
		t.Fatalf("burst of %d bytes only", burst.Len())
	}
	c.write(burst.String())
	for _, w := range want {
		resp, body := c.read("GET")
		check(t, resp, body, 200, "fast", w)
		if t.Failed() {
			t.FailNow()
		}
	}
}

// TestHandoff: a request the fast path does not take (chunked) hands the
// connection, bytes read included, to net/http, which serves it and the
// ones after.
func TestHandoff(t *testing.T) {
	const chunked = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
	t.Run("sequential", func(t *testing.T) {
		s := startServer(t, handler)
		c := s.dial(t)
		c.get("/first", "fast")
		c.write(chunked)
		resp, body := c.read("POST")
		check(t, resp, body, 200, "fallback", "hello world")
		c.get("/third", "fallback")
	})
	t.Run("pipelined", func(t *testing.T) {
		s := startServer(t, handler)
		c := s.dial(t)
		c.write("GET /first HTTP/1.1\r\nHost: x\r\n\r\n" + chunked + "GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.read("GET")
		check(t, resp, body, 200, "fast", "hello /first")
		resp, body = c.read("POST")
		check(t, resp, body, 200, "fallback", "hello world")
		resp, body = c.read("GET")
		check(t, resp, body, 200, "fallback", "hello /third")
	})
}

// TestFallbackShapes sends what the fast path leaves to net/http and
// checks net/http's answer.
func TestFallbackShapes(t *testing.T) {
	bigHead := "GET /big-head HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 8<<10) + "\r\n\r\n"
	tests := []struct {
		name, req string
		code      int
		by        string // "" when no handler runs
		body      string // "" for any
		closes    bool   // the server closes the connection after
	}{
		{"HTTP/1.0", "GET /old HTTP/1.0\r\n\r\n", 200, "fallback", "hello /old", true},
		{"two Content-Length", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, "", "", true},
		// net/http (Go 1.27) joins an obs-folded line to the one before:
		// served, with the value "a b".
		{"obs-fold", "GET /fold HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 200, "fallback", "hello /fold", false},
		{"obs-fold in Host", "GET / HTTP/1.1\r\nHost: x\r\n y\r\n\r\n", 400, "", "", true},
		{"missing Host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400, "", "", true},
		{"two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "", "", true},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "", "", true},
		{"lower-case method", "get /lower HTTP/1.1\r\nHost: x\r\n\r\n", 200, "fallback", "hello /lower", false},
		{"head over 4 KiB", bigHead, 200, "fallback", "hello /big-head", false},
		{"absolute-form", "GET http://example.com/abs HTTP/1.1\r\nHost: other\r\n\r\n", 200, "fallback", "hello /abs", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, handler)
			c := s.dial(t)
			c.write(tc.req)
			resp, body := c.read("GET")
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d (body %q)", resp.StatusCode, tc.code, body)
			}
			if got := resp.Header.Get(servedBy); got != tc.by {
				t.Errorf("served by %q, want %q", got, tc.by)
			}
			if tc.body != "" && body != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			if tc.closes {
				c.closedWithin(time.Second)
			} else {
				c.get("/next", "fallback")
			}
		})
	}

	t.Run("garbage", func(t *testing.T) {
		s := startServer(t, handler)
		for _, g := range []string{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n", "\r\n\r\n\r\n", "hello\r\n\r\n", "G\x00T / HTTP/1.1\r\n\r\n"} {
			c := s.dial(t)
			c.write(g)
			resp, body, err := c.readResponse("GET")
			if err == nil && resp.StatusCode != 400 {
				t.Errorf("%q: status %d (%q), want 400 or a close", g, resp.StatusCode, body)
			}
			c.closedWithin(time.Second)
		}
	})

	t.Run("head over MaxHeaderBytes", func(t *testing.T) {
		s := startServer(t, handler)
		c := s.dial(t)
		// net/http answers 431 as soon as it read past its limit: write
		// on the side, the end of the head may meet a closed connection.
		go func() {
			c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
			io.WriteString(c.nc, "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: "+strings.Repeat("p", 64<<10+8<<10)+"\r\n\r\n")
		}()
		resp, body := c.read("GET")
		check(t, resp, body, 431, "", body)
	})

	t.Run("Expect 100-continue", func(t *testing.T) {
		s := startServer(t, handler)
		c := s.dial(t)
		c.write("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		resp, body := c.read("POST")
		if resp.StatusCode != http.StatusContinue {
			t.Fatalf("status %d (%q), want 100", resp.StatusCode, body)
		}
		c.write("hello")
		resp, body = c.read("POST")
		check(t, resp, body, 200, "fallback", "hello")
		c.get("/next", "fallback")
	})
}

// TestHeaderValueCount: net/http's server (Go 1.27) answers 431 to a
// request with more than 500 header lines, however small; the fast path
// must not serve such a head either.
func TestHeaderValueCount(t *testing.T) {
	s := startServer(t, handler)
	c := s.dial(t)
	req := "GET /many HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("A: b\r\n", 600) + "\r\n"
	if len(req) > bufpool.Size {
		t.Fatalf("head of %d bytes: it would not take the fast path anyway", len(req))
	}
	c.write(req)
	resp, body := c.read("GET")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("600 header lines: status %d served by %q, want 431 as net/http answers", resp.StatusCode, resp.Header.Get(servedBy))
	}
	_ = body
}

func TestRequestBodies(t *testing.T) {
	t.Run("echo", func(t *testing.T) {
		s := startServer(t, handler)
		c := s.dial(t)
		c.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world")
		resp, body := c.read("POST")
		check(t, resp, body, 200, "fast", "hello world")
		big := strings.Repeat("0123456789abcdef", 100<<10/16)
		c.write("PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + big)
		resp, body = c.read("PUT")
		check(t, resp, body, 200, "fast", big)
		c.get("/next", "fast")
	})

	t.Run("unread 10 KiB", func(t *testing.T) {
		s := startServer(t, handler)
		c := s.dial(t)
		c.write("POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 10240\r\n\r\n" + strings.Repeat("z", 10240))
		resp, body := c.read("POST")
		check(t, resp, body, 200, "fast", "ignored")
		if resp.Close {
			t.Error("the server closes the connection")
		}
		c.get("/next", "fast")
	})

	t.Run("unread 1 MiB", func(t *testing.T) {
		s := startServer(t, handler)
		c := s.dial(t)
		c.write("POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
		go func() { // the server stops reading: this may fail
			c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
			c.nc.Write(make([]byte, 1<<20))
		}()
		resp, body := c.read("POST")
		check(t, resp, body, 200, "fast", "ignored")
		if !resp.Close { // ReadResponse drops the header, sets Close
			t.Error("no Connection: close")
		}
		c.closedWithin(2 * time.Second)
	})

	t.Run("body shorter than Content-Length", func(t *testing.T) {
		s := startServer(t, handler)
		c := s.dial(t)
		c.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
		c.nc.(*net.TCPConn).CloseWrite()
		// The handler's read fails: net/http's handler sees
		// ErrUnexpectedEOF; whatever it answers, the connection closes.
		c.closedWithin(2 * time.Second)
	})
}

func TestConnectionClose(t *testing.T) {
	s := startServer(t, handler)
	t.Run("client", func(t *testing.T) {
		c := s.dial(t)
		c.write("GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		resp, body := c.read("GET")
		check(t, resp, body, 200, "fast", "hello /bye")
		if !resp.Close { // ReadResponse drops the header, sets Close
			t.Error("no Connection: close")
		}
		c.closedWithin(time.Second)
	})
	t.Run("handler", func(t *testing.T) {
		c := s.dial(t)
		c.write("GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.read("GET")
		check(t, resp, body, 200, "fast", "bye")
		if !resp.Close {
			t.Error("no Connection: close")
		}
		c.closedWithin(time.Second)
	})
	// A body shorter than its declared length: only closing tells the
	// client, as net/http does.
	t.Run("short body", func(t *testing.T) {
		c := s.dial(t)
		c.write("GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body, err := c.readResponse("GET")
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("error %v, want unexpected EOF", err)
		}
		if resp == nil || resp.Header.Get(servedBy) != "fast" || string(body) != "hello" {
			t.Errorf("response %v, body %q; want the fast path's, hello", resp, body)
		}
	})
}

func TestResponseFraming(t *testing.T) {
	s := startServer(t, handler)
	c := s.dial(t) // one connection throughout: each answer's framing must be exact

	t.Run("handler Content-Length", func(t *testing.T) {
		c.write("GET /cl HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.read("GET")
		check(t, resp, body, 200, "fast", "hello")
		if resp.ContentLength != 5 || resp.TransferEncoding != nil {
			t.Errorf("Content-Length %d, Transfer-Encoding %q; want 5, none", resp.ContentLength, resp.TransferEncoding)
		}
	})
	t.Run("small body, length added", func(t *testing.T) {
		c.write("GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.read("GET")
		check(t, resp, body, 200, "fast", "hello /small")
		if resp.ContentLength != int64(len("hello /small")) || resp.TransferEncoding != nil {
			t.Errorf("Content-Length %d, Transfer-Encoding %q; want %d, none", resp.ContentLength, resp.TransferEncoding, len("hello /small"))
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
	})
	t.Run("10 KiB chunked", func(t *testing.T) {
		for _, path := range []string{"/big", "/big1"} {
			c.write("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, body := c.read("GET")
			check(t, resp, body, 200, "fast", string(bigBody))
			if resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
				t.Errorf("%s: Content-Length %d, Transfer-Encoding %q; want chunked", path, resp.ContentLength, resp.TransferEncoding)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("%s: Content-Type %q", path, ct)
			}
		}
	})
	t.Run("Flush first", func(t *testing.T) {
		c.write("GET /flush HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.read("GET")
		check(t, resp, body, 200, "fast", "hello")
		if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
			t.Errorf("Transfer-Encoding %q, want chunked", resp.TransferEncoding)
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		for _, path := range []string{"/small", "/cl", "/big"} {
			c.write("HEAD " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, body := c.read("HEAD")
			check(t, resp, body, 200, "fast", "")
			if path == "/cl" && resp.Header.Get("Content-Length") != "5" {
				t.Errorf("HEAD /cl: Content-Length %q, want the handler's 5", resp.Header.Get("Content-Length"))
			}
			// No body bytes on the wire: the next answer reads clean.
			c.get("/after-head", "fast")
		}
	})
	t.Run("204", func(t *testing.T) {
		c.write("GET /204 HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.read("GET")
		check(t, resp, body, 204, "fast", "")
		if v, ok := resp.Header["Content-Length"]; ok || resp.TransferEncoding != nil {
			t.Errorf("204 with Content-Length %q, Transfer-Encoding %q", v, resp.TransferEncoding)
		}
		c.get("/after-204", "fast")
	})
	t.Run("304", func(t *testing.T) {
		c.write("GET /304 HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"v1\"\r\n\r\n")
		resp, body := c.read("GET")
		check(t, resp, body, 304, "fast", "")
		if resp.Header.Get("ETag") != `"v1"` || resp.TransferEncoding != nil {
			t.Errorf("304: ETag %q, Transfer-Encoding %q", resp.Header.Get("ETag"), resp.TransferEncoding)
		}
		c.get("/after-304", "fast")
	})
	t.Run("trailer", func(t *testing.T) {
		c.write("GET /trailer HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.read("GET")
		check(t, resp, body, 200, "fast", "hello")
		if got := resp.Trailer.Get("X-Sum"); got != "42" {
			t.Errorf("trailer X-Sum %q, want 42 (trailers %v)", got, resp.Trailer)
		}
	})
	t.Run("Date", func(t *testing.T) {
		c.write("GET /date HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, _ := c.read("GET")
		d, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil {
			t.Fatalf("Date %q: %v", resp.Header.Get("Date"), err)
		}
		if time.Since(d).Abs() > 5*time.Second {
			t.Errorf("Date %v, now %v", d, time.Now())
		}
	})
	t.Run("Content-Type sniffed", func(t *testing.T) {
		c.write("GET /html HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, _ := c.read("GET")
		if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("Content-Type %q, want text/html; charset=utf-8", ct)
		}
	})
	t.Run("no response splitting", func(t *testing.T) {
		c.write("GET /split HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.read("GET")
		check(t, resp, body, 200, "fast", "ok")
		if v, ok := resp.Header["Set-Cookie"]; ok {
			t.Errorf("a header value made a Set-Cookie line: %q", v)
		}
		if v := resp.Header.Get("X-Evil"); !strings.HasPrefix(v, "a") || !strings.Contains(v, "Set-Cookie: pwned=1") {
			t.Errorf("X-Evil %q", v)
		}
	})
	t.Run("103 Early Hints", func(t *testing.T) {
		c.write("GET /hints HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, _ := c.read("GET")
		if resp.StatusCode != http.StatusEarlyHints || resp.Header.Get("Link") == "" {
			t.Fatalf("first answer %d, Link %q; want 103 with a Link", resp.StatusCode, resp.Header.Get("Link"))
		}
		resp, body := c.read("GET")
		check(t, resp, body, 200, "fast", "ok")
	})
	c.get("/last", "fast")
}

// TestHeaderAfterWrite: as net/http documents for ResponseWriter, header
// changes after the first Write (or WriteHeader) have no effect but for
// trailers; net/http sends neither X-Late nor X-Sum in the head here, even
// though the head itself goes out only when the handler returns.
func TestHeaderAfterWrite(t *testing.T) {
	s := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "hello")
		w.Header().Set("X-Sum", "42")
		w.Header().Set("X-Late", "1")
	})
	c := s.dial(t)
	c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := c.read("GET")
	check(t, resp, body, 200, "fast", "hello")
	for _, k := range []string{"X-Sum", "X-Late"} {
		if v, ok := resp.Header[k]; ok {
			t.Errorf("%s: %q in the head, set after the first Write", k, v)
		}
	}
	if got := resp.Trailer.Get("X-Sum"); got != "42" {
		t.Errorf("trailer X-Sum %q, want 42", got)
	}
}

// TestClientContext: the request's context ends when the client goes
// away, and only then.
func TestClientContext(t *testing.T) {
	// The handler waits for the context for up to wait, then answers
	// what it saw.
	const wait = 1500 * time.Millisecond
	saw := make(chan string, 4)
	h := func(w http.ResponseWriter, r *http.Request) {
		res := "no cancel"
		select {
		case <-r.Context().Done():
			res = "canceled"
		case <-time.After(wait):
		}
		saw <- res
		io.WriteString(w, res)
	}
	// gone sends a request, leaves after wait, and expects the handler's
	// context to end.
	gone := func(t *testing.T, s *testServer, wait time.Duration) {
		c := s.dial(t)
		c.write("GET /gone HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(wait)
		c.nc.Close()
		select {
		case res := <-saw:
			if res != "canceled" {
				t.Errorf("handler: %s, want canceled", res)
			}
		case <-time.After(ioTimeout):
			t.Fatal("the handler did not return")
		}
	}
	t.Run("client gone", func(t *testing.T) { gone(t, startServer(t, h), 100*time.Millisecond) })
	// The watch lasts the whole request: a client that leaves after the
	// connection's read deadlines (header and idle, 200 ms here) passed is
	// noticed too.
	t.Run("client gone after the deadlines", func(t *testing.T) {
		gone(t, startServer(t, h, func(s *Server) { s.ReadHeaderTimeout, s.IdleTimeout = 200*time.Millisecond, 200*time.Millisecond }), 600*time.Millisecond)
	})
	t.Run("pipelined request", func(t *testing.T) {
		s := startServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/wait" {
				h(w, r)
				return
			}
			handler(w, r)
		})
		c := s.dial(t)
		c.write("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(100 * time.Millisecond) // the handler watches the client
		c.write("GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.read("GET")
		check(t, resp, body, 200, "fast", "no cancel")
		resp, body = c.read("GET")
		check(t, resp, body, 200, "fast", "hello /next")
	})
	// A second request while the first waits, then the client shuts its
	// side: it still reads, so the first goes on and the second is served
	// (its context ends at the EOF, as with net/http).
	t.Run("pipelined, then half-close", func(t *testing.T) {
		s := startServer(t, waitContext)
		c := s.dial(t)
		c.write("GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(100 * time.Millisecond)
		c.write("GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
		c.nc.(*net.TCPConn).CloseWrite()
		resp, body := c.read("GET")
		check(t, resp, body, 200, "fast", "/first not canceled")
		resp, body = c.read("GET")
		check(t, resp, body, 200, "fast", "/second canceled")
	})
	// A client that half-closes after its request (printf ... | nc -N)
	// is still there to read the answer: net/http cancels the context
	// too, but sends what the handler writes.
	t.Run("half-close", func(t *testing.T) {
		s := startServer(t, h)
		c := s.dial(t)
		c.write("GET /half HTTP/1.1\r\nHost: x\r\n\r\n")
		c.nc.(*net.TCPConn).CloseWrite()
		resp, body, err := c.readResponse("GET")
		if err != nil {
			t.Fatalf("no answer after the client half-closed: %v", err)
		}
		check(t, resp, string(body), 200, "fast", "canceled")
	})
}

// TestHEADLength: net/http answers a HEAD as it answers the GET, less the
// body: a handler writing a small body gets the Content-Length (and the
// sniffed Content-Type) the GET gets.
func TestHEADLength(t *testing.T) {
	s := startServer(t, handler)
	c := s.dial(t)
	c.write("GET /html HTTP/1.1\r\nHost: x\r\n\r\n")
	get, _ := c.read("GET")
	c.write("HEAD /html HTTP/1.1\r\nHost: x\r\n\r\n")
	head, _ := c.read("HEAD")
	for _, k := range []string{"Content-Length", "Content-Type"} {
		if g, h := get.Header.Get(k), head.Header.Get(k); g != h {
			t.Errorf("%s: GET %q, HEAD %q (net/http sends the same)", k, g, h)
		}
	}
}

func TestAbortHandler(t *testing.T) {
	s := startServer(t, handler)
	c := s.dial(t)
	c.write("GET /abort HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body, err := c.readResponse("GET")
	if err == nil {
		t.Fatalf("full response %d %q after ErrAbortHandler", resp.StatusCode, body)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error %v, want unexpected EOF", err)
	}
	if resp != nil && (resp.Header.Get(servedBy) != "fast" || string(body) != "0123456789") {
		t.Errorf("served by %q, body %q", resp.Header.Get(servedBy), body)
	}
	c.closedWithin(time.Second)
}

func TestSlowloris(t *testing.T) {
	t.Parallel()
	s := startServer(t, handler)
	c := s.dial(t)
	start := time.Now()
	c.write("GET / HTTP/1.1\r\nHost: x\r\n")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				c.nc.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.nc.Write([]byte("X")); err != nil {
					return
				}
			}
		}
	}()
	c.closedWithin(s.ReadHeaderTimeout + time.Second)
	close(stop)
	wg.Wait()
	if d := time.Since(start); d < s.ReadHeaderTimeout-100*time.Millisecond {
		t.Errorf("closed after %v, before ReadHeaderTimeout %v", d, s.ReadHeaderTimeout)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	s := startServer(t, handler, func(s *Server) { s.IdleTimeout = 500 * time.Millisecond })
	c := s.dial(t)
	c.get("/", "fast")
	d := c.closedWithin(1500 * time.Millisecond)
	if d < 400*time.Millisecond {
		t.Errorf("idle connection closed after %v, before IdleTimeout", d)
	}
}

// TestIdleTimeoutBusy: a connection busy for longer than IdleTimeout stays
// open (its idle deadline, kept across requests while it is far enough
// away, moves on), and once idle it is closed IdleTimeout after its last
// answer, not sooner, and at most idleSlack later.
func TestIdleTimeoutBusy(t *testing.T) {
	t.Parallel()
	s := startServer(t, handler, func(s *Server) { s.IdleTimeout = 500 * time.Millisecond })
	c := s.dial(t)
	for start := time.Now(); time.Since(start) < 4*s.IdleTimeout; time.Sleep(10 * time.Millisecond) {
		c.get("/", "fast")
	}
	d := c.closedWithin(1500 * time.Millisecond)
	if d < s.IdleTimeout-50*time.Millisecond || d > s.IdleTimeout+idleSlack(s.IdleTimeout)+300*time.Millisecond {
		t.Errorf("idle connection closed %v after its last answer, want %v (at most %v late)", d, s.IdleTimeout, idleSlack(s.IdleTimeout))
	}
}

// TestSendsEarly: a client that first waits for each answer, so that its
// connection holds answers back to send them as the wait for the next
// request begins (flushThenWait), then sends a request while the handler
// of the one before still runs. The early bytes' readiness is taken by the
// poller before that wait begins; the wait must not hang on it: it is
// rescued within rescueAfter, and the rest of the exchanges go on.
func TestSendsEarly(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/think" {
			time.Sleep(50 * time.Millisecond) // the poller sees the next request meanwhile
		}
		handler(w, r)
	})
	c := s.dial(t)
	for range 5 {
		c.get("/", "fast")
	}
	for range 3 {
		c.write("GET /think HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(10 * time.Millisecond)
		start := time.Now()
		c.write("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.read("GET")
		check(t, resp, body, 200, "fast", "hello /think")
		resp, body = c.read("GET")
		check(t, resp, body, 200, "fast", "hello /after")
		if took := time.Since(start); took > time.Second {
			t.Errorf("the request sent early was answered after %v", took)
		}
	}
	for range 5 {
		c.get("/", "fast")
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	finished := make(chan time.Time, 1)
	s := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			handler(w, r)
			return
		}
		started <- struct{}{}
		handler(w, r)
		finished <- time.Now()
	})
	idle := s.dial(t)
	idle.get("/idle", "fast")
	handed := s.dial(t) // an idle connection of the fallback's
	handed.write("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
	resp, body := handed.read("POST")
	check(t, resp, body, 200, "fallback", "hi")

	busy := s.dial(t)
	busy.write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case <-started:
	case <-time.After(ioTimeout):
		t.Fatal("the handler did not start")
	}
	shut := make(chan error, 1)
	var shutAt time.Time
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		err := s.Shutdown(ctx)
		shutAt = time.Now()
		shut <- err
	}()

	idle.closedWithin(time.Second)
	handed.closedWithin(time.Second)
	resp, body = busy.read("GET")
	check(t, resp, body, 200, "fast", "done")
	if !resp.Close {
		t.Error("the answer during Shutdown keeps the connection open")
	}
	busy.closedWithin(time.Second)

	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if done := <-finished; shutAt.Before(done) {
			t.Errorf("Shutdown returned %v before the handler in flight did", done.Sub(shutAt))
		}
	case <-time.After(ioTimeout):
		t.Fatal("Shutdown did not return")
	}
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		if !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(time.Second):
		t.Error("Serve did not return after Shutdown")
	}
	if nc, err := net.DialTimeout("tcp", s.addr, time.Second); err == nil {
		nc.Close()
		t.Error("a new dial succeeds after Shutdown")
	}
}

// TestHeadAtBufferSize: a head that fills the fast path's buffer exactly is
// served there; one byte more goes to the fallback, which serves it too.
func TestHeadAtBufferSize(t *testing.T) {
	s := startServer(t, handler)
	for _, n := range []int{bufpool.Size - 1, bufpool.Size, bufpool.Size + 1} {
		c := s.dial(t)
		head := "GET /edge HTTP/1.1\r\nHost: x\r\nX-Pad: "
		pad := n - len(head) - len("\r\n\r\n")
		c.write(head + strings.Repeat("p", pad) + "\r\n\r\n")
		resp, body := c.read("GET")
		by := "fast"
		if n > bufpool.Size {
			by = "fallback"
		}
		check(t, resp, body, 200, by, "hello /edge")
		c.get("/next", by)
	}
}

// The findings of a review, each held to what net/http does.
func TestReviewFindings(t *testing.T) {
	// A pipelined request whose head comes in pieces after a request that
	// outlived ReadHeaderTimeout gets its own header deadline, not the
	// previous head's, long passed.
	t.Run("header deadline per head", func(t *testing.T) {
		s := startServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				time.Sleep(500 * time.Millisecond)
			}
			handler(w, r)
		}, func(s *Server) { s.ReadHeaderTimeout = 300 * time.Millisecond })
		c := s.dial(t)
		c.write("GET /slow HTTP/1.1\r\nHo")
		time.Sleep(50 * time.Millisecond)
		c.write("st: x\r\n\r\nGET /b HTTP/1.1\r\nHo")
		time.Sleep(50 * time.Millisecond)
		c.write("st: x\r\n\r\n")
		resp, body := c.read("GET")
		check(t, resp, body, 200, "fast", "done")
		resp, body = c.read("GET")
		check(t, resp, body, 200, "fast", "hello /b")
	})
	// A connection that never sends a byte is closed after
	// ReadHeaderTimeout, not IdleTimeout.
	t.Run("first byte within ReadHeaderTimeout", func(t *testing.T) {
		s := startServer(t, handler, func(s *Server) { s.ReadHeaderTimeout, s.IdleTimeout = 200*time.Millisecond, 5*time.Second })
		if waited := s.dial(t).closedWithin(2 * time.Second); waited > time.Second {
			t.Errorf("closed after %v, want about 200ms", waited)
		}
	})
	// Old clients send CRLF after a POST body: dropped, in the same write
	// as the next request or before it.
	t.Run("CRLF after a POST", func(t *testing.T) {
		s := startServer(t, handler)
		c := s.dial(t)
		c.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.read("POST")
		check(t, resp, body, 200, "fast", "abc")
		resp, body = c.read("GET")
		check(t, resp, body, 200, "fast", "hello /b")
		c.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\r\n")
		resp, body = c.read("POST")
		check(t, resp, body, 200, "fast", "abc")
		c.get("/c", "fast")
	})
	// Done from another goroutine while the handler reads the body: no
	// data race (go test -race), and the answer comes.
	t.Run("Done from a goroutine", func(t *testing.T) {
		s := startServer(t, func(w http.ResponseWriter, r *http.Request) {
			done := make(chan struct{})
			go func() { defer close(done); _ = r.Context().Done() }()
			b, _ := io.ReadAll(r.Body)
			<-done
			w.Write(b)
		})
		c := s.dial(t)
		c.write("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
		resp, body := c.read("POST")
		check(t, resp, body, 200, "fast", "hello")
	})
	// The context ends when the handler returns, with what waits on it.
	t.Run("context ends with the handler", func(t *testing.T) {
		ctxs := make(chan context.Context, 1)
		fired := make(chan struct{})
		s := startServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				handler(w, r)
				return
			}
			context.AfterFunc(r.Context(), func() { close(fired) })
			ctxs <- r.Context()
			io.WriteString(w, "ok")
		})
		c := s.dial(t)
		c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		c.read("GET")
		ctx := <-ctxs
		select {
		case <-fired:
		case <-time.After(ioTimeout):
			t.Fatal("an AfterFunc of the request's context did not run after the handler returned")
		}
		if ctx.Err() == nil {
			t.Error("the request's context is not done after the handler returned")
		}
		c.get("/next", "fast") // and the connection goes on
	})
	// WriteHeader first, then the body read: it is still there.
	t.Run("body read after WriteHeader", func(t *testing.T) {
		s := startServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "5")
			w.WriteHeader(200)
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		})
		c := s.dial(t)
		c.write("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
		resp, body := c.read("POST")
		check(t, resp, body, 200, "fast", "hello")
	})
}

// TestNoLogger: a Server without a logger serves, and a handler's panic is
// logged (with slog's default) rather than panicking the server again.
func TestNoLogger(t *testing.T) {
	ts := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("handler bug")
		}
		io.WriteString(w, "ok")
	}, func(s *Server) { s.Log = nil })
	c := &http.Client{Timeout: ioTimeout}
	if _, err := c.Get("http://" + ts.addr + "/panic"); err == nil {
		t.Error("a panicking handler's request got an answer")
	}
	resp, err := c.Get("http://" + ts.addr + "/ok")
	if err != nil {
		t.Fatalf("after a panic with no logger the server no longer serves: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Errorf("got %q, want ok", b)
	}
}

// TestHijack: a websocket handshake is served on the fast path, and the
// handler hijacks the connection: bytes the client sent right after the
// head are in the reader, the server no longer counts the connection as
// its own (Shutdown leaves it), and a second Hijack fails.
func TestHijack(t *testing.T) {
	hijacked := make(chan net.Conn, 1)
	s := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "not an upgrade", http.StatusBadRequest)
			return
		}
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, "hijack: "+err.Error(), http.StatusInternalServerError)
			return
		}
		if _, _, err := http.NewResponseController(w).Hijack(); err == nil {
			t.Error("a second Hijack succeeded")
		}
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n%s: %s\r\n\r\n", servedBy, w.Header().Get(servedBy))
		brw.Flush()
		go func() {
			// Past the handler's return: the connection is the hijacker's.
			defer nc.Close()
			for range 2 {
				line, err := brw.ReadString('\n')
				if err != nil {
					return
				}
				brw.WriteString(line)
				brw.Flush()
			}
			hijacked <- nc
		}()
	})
	c := s.dial(t)
	// The first line follows the head in the same write: it is buffered.
	c.write("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nearly\n")
	c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get(servedBy) != "fast" {
		t.Fatalf("status %d served by %q, want 101 by the fast path", resp.StatusCode, resp.Header.Get(servedBy))
	}
	for _, want := range []string{"early\n", "late\n"} {
		if want == "late\n" {
			// Shutdown must not wait for, nor close, a hijacked connection.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown with a hijacked connection: %v", err)
			}
			cancel()
			c.write(want)
		}
		line, err := c.br.ReadString('\n')
		if err != nil || line != want {
			t.Fatalf("echo: %q, %v; want %q", line, err, want)
		}
	}
	select {
	case <-hijacked:
	case <-time.After(ioTimeout):
		t.Fatal("the hijacker did not finish")
	}
}
