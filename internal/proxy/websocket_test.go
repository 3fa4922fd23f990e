package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/servertest"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestCloseFrameIsLast: a frame the relay read while CloseWith held the
// frame lock to write the gateway's close frame is dropped, not sent after
// it (issue 12 item 4: the closing check used to come before the lock).
func TestCloseFrameIsLast(t *testing.T) {
	client, gwClient := tcpPair(t) // the browser, and the gateway's side of it
	gwBack, server := tcpPair(t)   // the gateway's side of the server, and the server
	ws := newSession(gwClient, bufio.NewReader(gwClient), gwBack, bufio.NewReader(gwBack))
	// CloseWith's first step, held open: the lock on frames to the client.
	ws.toClient.lock.lock(0)
	relayed := make(chan error, 1)
	go func() {
		relayed <- copyFrames(ws.client, ws.toClient.br, ws.toClient.lock, &ws.closing, &ws.backClosed)
	}()
	// A data frame from the server reaches the relay, which waits for the lock.
	if _, err := server.Write([]byte{0x81, 5, 'h', 'e', 'l', 'l', 'o'}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	// The rest of CloseWith: closing, the close frame, the lock given back.
	ws.closing.Store(true)
	if _, err := gwClient.Write(closeFrame(CloseServiceRestart, "test", false)); err != nil {
		t.Fatal(err)
	}
	ws.toClient.lock.unlock()

	r := bufio.NewReader(client)
	client.SetReadDeadline(time.Now().Add(2 * time.Second))
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		t.Fatalf("no frame at all: %v", err)
	}
	if op := hdr[0] & 0x0f; op != 0x8 {
		t.Fatalf("first frame has opcode %#x, want the close frame", op)
	}
	io.CopyN(io.Discard, r, int64(hdr[1]&0x7f))
	client.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := io.ReadFull(r, hdr[:]); err == nil {
		t.Fatalf("a frame (opcode %#x) after the gateway's close frame", hdr[0]&0x0f)
	}
	server.Close()
	if err := <-relayed; err == nil {
		t.Error("the relay ended without an error after the server went")
	}
}

// copyFrames copies frames from src to dst as a pump does, never parking,
// until src fails.
func copyFrames(dst io.Writer, src *bufio.Reader, lock frameLock, closing, sentClose *atomic.Bool) error {
	p := &pump{ws: &wsSession{}, dst: dst, br: src, lock: lock, closing: closing, sentClose: sentClose}
	for {
		if err := p.frame(); err != nil {
			return err
		}
	}
}

// TestUpgradeThroughProxy: a websocket handshake goes to the server as
// any request does (the outbound request: no User-Agent of the gateway's
// own, connection-specific headers dropped, the forwarding headers and
// the epoch), its 101 is relayed with the bytes the server sent right
// after it, and frames pass both ways. A refusal is relayed as an answer
// is (connection-specific headers dropped), and its connection is not
// pooled.
func TestUpgradeThroughProxy(t *testing.T) { forEngines(t, testUpgradeThroughProxy) }

func testUpgradeThroughProxy(t *testing.T, engine string) {
	hello := frame(0x1, []byte("hello"), false)
	fromClient := frame(0x1, []byte("hi there"), true)
	got := make(chan []byte, 1)
	srv := servertest.New(t, func(c net.Conn, req *servertest.Request, _ int) bool {
		switch {
		case strings.HasPrefix(req.Head, "GET /refuse "):
			io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n"+
				"Content-Length: 6\r\n\r\nno way")
			return true
		case req.Header("Upgrade") != "":
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
				"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"+string(hello))
			b := make([]byte, len(fromClient))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.ReadFull(c, b)
			if err != nil {
				b = nil
			}
			got <- b
			return false
		}
		return servertest.Answer(c, "plain")
	})
	h := newEngineHarness(t, engine, "", srv.Addr(), servertest.ClosedAddr(t))
	front := h.serve(t).Listener.Addr().String()

	c := dialFront(t, front)
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, X-Hop\r\nX-Hop: 1\r\nUpgrade: websocket\r\n"+
		"X-Tandem-Role: active\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-Websocket-Accept") == "" {
		t.Fatalf("handshake answered %d %v", resp.StatusCode, resp.Header)
	}
	first := make([]byte, len(hello))
	if _, err := io.ReadFull(br, first); err != nil || string(first) != string(hello) {
		t.Errorf("the frame sent with the 101: %q %v, want %q", first, err, hello)
	}
	c.Write(fromClient)
	if b := <-got; string(b) != string(fromClient) {
		t.Errorf("the server got %q, want the client's frame %q", b, fromClient)
	}

	hs := srv.Requests()[0]
	for name, want := range map[string]string{
		"Connection": "Upgrade", "Upgrade": "websocket", "User-Agent": "", "X-Hop": "", "X-Tandem-Role": "",
		"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "app.test", "X-Tandem-Epoch": "1",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
	} {
		if v := hs.Header(name); v != want {
			t.Errorf("the handshake the server got has %s %q, want %q:\n%s", name, v, want, hs.Head)
		}
	}
	if !strings.HasPrefix(hs.Head, "GET /ws HTTP/1.1\r\nHost: app.test\r\n") {
		t.Errorf("handshake sent as\n%s", hs.Head)
	}

	// A refusal, then a plain request: the refusal's connection is closed,
	// not reused.
	refusal, body := exchangeHeader(t, front, "GET /refuse HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if refusal.StatusCode != http.StatusForbidden || body != "no way" {
		t.Errorf("refusal relayed as %d %q", refusal.StatusCode, body)
	}
	if refusal.Header.Get("X-Hop") != "" || refusal.Header.Get("Keep-Alive") != "" {
		t.Errorf("refusal relayed with the server's connection-specific headers: %v", refusal.Header)
	}
	h.finished(t)
	before := srv.Accepted()
	if status, body := exchangeVia(t, front, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n"); status != 200 || body != "plain" {
		t.Errorf("plain request: %d %q", status, body)
	}
	if srv.Accepted() != before+1 {
		t.Errorf("the connection of a refused upgrade was reused")
	}
}
