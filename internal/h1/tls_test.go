package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/testcert"
)

// startTLSServer is startServer on TLS, configured as the gateway does:
// HTTP/1.1 on the fast path, h2 on the fallback.
func startTLSServer(t *testing.T, h http.HandlerFunc) (*testServer, *x509.CertPool) {
	cert := testcert.New(t)
	s := startServer(t, h, func(s *Server) {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert.TLS}, NextProtos: []string{"h2", "http/1.1"}}
		s.TLSConfig = cfg
		s.Fallback.TLSConfig = cfg
		s.Fallback.Protocols = new(http.Protocols)
		s.Fallback.Protocols.SetHTTP1(true)
		s.Fallback.Protocols.SetHTTP2(true)
	})
	return s, cert.Pool
}

// tlsInfo answers what the request saw of its connection.
func tlsInfo(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/echo" {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s ", b)
	}
	if r.TLS == nil {
		fmt.Fprintf(w, "%s plain", r.Proto)
		return
	}
	fmt.Fprintf(w, "%s tls %x", r.Proto, r.TLS.Version)
}

func TestTLS(t *testing.T) {
	s, pool := startTLSServer(t, tlsInfo)
	get := func(c *http.Client, url string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	url := "https://" + s.addr + "/"
	// HTTP/1.1 over TLS: the fast path, with the connection's TLS state.
	h1c := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for range 3 {
		resp, body := get(h1c, url)
		check(t, resp, body, 200, "fast", "HTTP/1.1 tls 304")
	}
	// h2: handed to net/http after the handshake.
	h2c := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, body := get(h2c, url)
	check(t, resp, body, 200, "fallback", "HTTP/2.0 tls 304")
	// An HTTP/1.1 request the fast path leaves, after one it took: the
	// fallback still sees TLS (the connection's state rides in its context).
	conn, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{t: t, nc: conn, br: bufio.NewReader(conn)}
	c.write("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body = c.read("GET")
	check(t, resp, body, 200, "fast", "HTTP/1.1 tls 304")
	c.write("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	resp, body = c.read("POST")
	check(t, resp, body, 200, "fallback", "hello HTTP/1.1 tls 304")
	// Plain HTTP to the TLS port: told so, as net/http does; the server
	// goes on.
	plain := s.dial(t)
	plain.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	plain.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	if b, _ := io.ReadAll(plain.br); !strings.HasPrefix(string(b), "HTTP/1.0 400 Bad Request") || !strings.Contains(string(b), "HTTP request to an HTTPS server") {
		t.Errorf("plain HTTP to the TLS port got %q", b)
	}
	resp, body = get(h1c, url)
	check(t, resp, body, 200, "fast", "HTTP/1.1 tls 304")
}

// TestTLSPipelinedThenClose: a client that sends a second request while
// the first waits, then closes its side (close_notify, FIN), is still
// there to read both answers: neither context ends early, both are served.
func TestTLSPipelinedThenClose(t *testing.T) {
	s, pool := startTLSServer(t, waitContext)
	conn, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{t: t, nc: conn, br: bufio.NewReader(conn)}
	c.write("GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(100 * time.Millisecond) // the first waits and watches
	c.write("GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.CloseWrite()
	conn.NetConn().(*net.TCPConn).CloseWrite()
	resp, body := c.read("GET")
	check(t, resp, body, 200, "fast", "/first not canceled")
	resp, body = c.read("GET")
	check(t, resp, body, 200, "fast", "/second canceled") // at EOF, as net/http
}

// waitContext waits up to 300ms for the request's context and says
// whether it ended.
func waitContext(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
		fmt.Fprintf(w, "%s canceled", r.URL.Path)
	case <-time.After(300 * time.Millisecond):
		fmt.Fprintf(w, "%s not canceled", r.URL.Path)
	}
}

// TestTLSShutdownDuringHandshake: a client that connects and never
// finishes its handshake does not hold Shutdown up.
func TestTLSShutdownDuringHandshake(t *testing.T) {
	s, _ := startTLSServer(t, tlsInfo)
	silent := s.dial(t)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Shutdown took %v with a client in its handshake", d)
	}
	silent.closedWithin(time.Second)
}

// TestTLSClientGone: a TLS client that closes (close_notify, then FIN)
// while its request waits is noticed: the handler's context ends.
func TestTLSClientGone(t *testing.T) {
	saw := make(chan string, 1)
	s, pool := startTLSServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			saw <- "canceled"
		case <-time.After(3 * time.Second):
			saw <- "no cancel"
		}
	})
	conn, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(200 * time.Millisecond)
	conn.Close()
	select {
	case got := <-saw:
		if got != "canceled" {
			t.Errorf("handler: %s, want canceled", got)
		}
	case <-time.After(ioTimeout):
		t.Fatal("the handler did not return")
	}
}
