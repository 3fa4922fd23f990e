package proxy

import (
	"bufio"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
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
