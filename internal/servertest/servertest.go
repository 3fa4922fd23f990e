// Package servertest holds, for tests, a loopback HTTP/1.1 server that
// reads requests itself and lets its handler answer them however a test
// needs, down to what a real server would not do: close a kept-alive
// connection, reset it, answer slowly, never, or twice.
package servertest

import (
	"bufio"
	"io"
	"net"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Server is a loopback server run for one test.
type Server struct {
	ln net.Listener
	// handle answers one request on c (n: how many the server read so
	// far, this one included); it returns false to end the connection,
	// closing it or not as it likes.
	handle func(c net.Conn, req *Request, n int) bool

	mu    sync.Mutex
	conns int // connections accepted
	reqs  []*Request
}

// Request is a request as the server read it.
type Request struct {
	Head string // request line and header lines, CRLFs kept
	Body []byte
	Conn int // which connection (from 1) carried it
}

// Header returns the value of the first header line named name.
func (r *Request) Header(name string) string {
	for line := range strings.SplitSeq(r.Head, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// New starts a server that hands every request to handle, until the test ends.
func New(tb testing.TB, handle func(c net.Conn, req *Request, n int) bool) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{ln: ln, handle: handle}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			s.mu.Lock()
			s.conns++
			id := s.conns
			s.mu.Unlock()
			wg.Go(func() { s.serveConn(c, id) })
		}
	})
	return s
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

func (s *Server) serveConn(c net.Conn, id int) {
	br := bufio.NewReader(c)
	for {
		head, length, ok := readHead(br)
		if !ok {
			c.Close()
			return
		}
		req := &Request{Head: head, Conn: id}
		if length > 0 {
			req.Body = make([]byte, length)
			if _, err := io.ReadFull(br, req.Body); err != nil {
				c.Close()
				return
			}
		} else if strings.Contains(strings.ToLower(head), "\r\ntransfer-encoding: chunked\r\n") {
			body, err := io.ReadAll(httputil.NewChunkedReader(br))
			if _, _, ok := readHead(br); err != nil || !ok { // the trailer section, if any, and its CRLF
				c.Close()
				return
			}
			req.Body = body
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, req)
		n := len(s.reqs)
		s.mu.Unlock()
		if !s.handle(c, req, n) {
			return
		}
	}
}

// readHead reads lines up to an empty one, and the Content-Length among them.
func readHead(br *bufio.Reader) (head string, length int, ok bool) {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", 0, false
		}
		b.WriteString(line)
		if line == "\r\n" {
			return b.String(), length, true
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
}

// Requests returns the requests read so far.
func (s *Server) Requests() []*Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Request(nil), s.reqs...)
}

// Accepted returns the number of connections accepted so far.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Answer writes a 200 with body, keeping the connection.
func Answer(c net.Conn, body string) bool {
	_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	return err == nil
}

// Reset closes c with a TCP RST rather than a FIN.
func Reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// ClosedAddr returns a loopback address nothing listens on: a dial there
// is refused.
func ClosedAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
