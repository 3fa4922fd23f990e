package proxy

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/failover"
	"github.com/tandemproxy/tandem/internal/metrics"
	"github.com/tandemproxy/tandem/internal/route"
)

// harness is a Proxy in front of servers on loopback, with the table it
// routes with.
type harness struct {
	p     *Proxy
	table *route.Table
	group *route.Group
	front *httptest.Server

	// done gets a value when the proxy finished a request (serve).
	done chan struct{}

	mu       sync.Mutex
	switches []failover.Switch
}

// newHarness builds a failover group "app" over addrs (the first is the
// master, the others backups) with health checks off; groupYAML adds lines
// to the group (indented by four spaces).
func newHarness(tb testing.TB, groupYAML string, addrs ...string) *harness {
	tb.Helper()
	var b strings.Builder
	b.WriteString("listeners:\n  - {name: web, address: \"127.0.0.1:0\"}\ngroups:\n  - name: app\n    health: {disabled: true}\n")
	b.WriteString(groupYAML)
	b.WriteString("    servers:\n")
	for i, a := range addrs {
		b.WriteString("      - {name: s" + strconv.Itoa(i) + ", address: \"" + a + "\"")
		if i > 0 {
			b.WriteString(", backup: true")
		}
		b.WriteString("}\n")
	}
	cfg, err := config.Parse("t.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	h := &harness{}
	h.table = route.Build(cfg, backend.NewRegistry(nil), func(name string) *failover.Elector {
		return failover.NewElector(name, func(sw failover.Switch) {
			h.mu.Lock()
			h.switches = append(h.switches, sw)
			h.mu.Unlock()
		})
	})
	h.group = h.table.Group("app")
	h.group.Elector.SetView(h.group.View, "test")
	h.p = New(func() *route.Table { return h.table }, slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
	return h
}

// switched returns the switches so far, and forgets them.
func (h *harness) switched() []failover.Switch {
	h.mu.Lock()
	defer h.mu.Unlock()
	sw := h.switches
	h.switches = nil
	return sw
}

// serve starts a front server (net/http's) with the proxy as handler.
func (h *harness) serve(tb testing.TB) *httptest.Server {
	tb.Helper()
	h.done = make(chan struct{}, 64)
	h.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { h.done <- struct{}{} }()
		h.p.ServeHTTP(w, r)
	}))
	tb.Cleanup(h.front.Close)
	return h.front
}

// finished waits until the proxy finished a request.
func (h *harness) finished(tb testing.TB) {
	tb.Helper()
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		tb.Fatal("the proxy did not finish the request")
	}
}

// rawServer is a loopback server that reads request heads (and bodies by
// Content-Length) itself and answers what its handler writes: it can do
// what a real server would not (close a kept-alive connection, reset,
// answer slowly or never).
type rawServer struct {
	ln net.Listener
	// handle answers one request on c; it returns false to end the
	// connection (and closes it, or not, as it likes).
	handle func(c net.Conn, req *rawRequest, n int) bool

	mu    sync.Mutex
	conns int // connections accepted
	reqs  []*rawRequest
}

// rawRequest is a request as the raw server read it.
type rawRequest struct {
	head string // request line and headers, CRLFs kept
	body []byte
	conn int // which connection (1-based) carried it
}

func (r *rawRequest) header(name string) string {
	for line := range strings.SplitSeq(r.head, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func newRawServer(tb testing.TB, handle func(c net.Conn, req *rawRequest, n int) bool) *rawServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &rawServer{ln: ln, handle: handle}
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

func (s *rawServer) addr() string { return s.ln.Addr().String() }

func (s *rawServer) serveConn(c net.Conn, id int) {
	br := bufio.NewReader(c)
	for {
		var head strings.Builder
		length := 0
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				c.Close()
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		req := &rawRequest{head: head.String(), conn: id}
		if length > 0 {
			req.body = make([]byte, length)
			if _, err := io.ReadFull(br, req.body); err != nil {
				c.Close()
				return
			}
		} else if strings.Contains(strings.ToLower(req.head), "transfer-encoding: chunked") {
			body, err := io.ReadAll(httputil.NewChunkedReader(br))
			if err != nil {
				c.Close()
				return
			}
			req.body = body
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

// requests returns the requests read so far.
func (s *rawServer) requests() []*rawRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*rawRequest(nil), s.reqs...)
}

// accepted returns the number of connections accepted so far.
func (s *rawServer) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// answer writes a 200 with body and keeps the connection.
func answer(c net.Conn, body string) bool {
	_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	return err == nil
}

// reset closes c with a TCP RST rather than a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
