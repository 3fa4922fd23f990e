package proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/h1"
	"github.com/tandemproxy/tandem/internal/servertest"
	"github.com/tandemproxy/tandem/internal/testcert"
)

// holdConn is the client's socket under its TLS connection: while held,
// what TLS writes is kept (one record per Write) rather than sent, for
// the test to send as it likes, cut where it likes.
type holdConn struct {
	*net.TCPConn
	mu      sync.Mutex
	holding bool
	records [][]byte
}

func (c *holdConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holding {
		c.records = append(c.records, append([]byte(nil), b...))
		return len(b), nil
	}
	return c.TCPConn.Write(b)
}

// hold keeps what the client's TLS connection writes until take.
func (c *holdConn) hold() {
	c.mu.Lock()
	c.holding = true
	c.mu.Unlock()
}

// take returns the records kept since hold, and sends again.
func (c *holdConn) take() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.records
	c.records, c.holding = nil, false
	return r
}

// tlsPair returns the two ends of a loopback TLS connection, the
// handshake done: the client's end, the socket under it, and the
// gateway's end (a *tls.Conn, as the HTTP/1.1 server hijacks it).
func tlsPair(t *testing.T) (client *tls.Conn, raw *holdConn, gw *tls.Conn) {
	t.Helper()
	return tlsPairUpTo(t, 0)
}

// tlsPairUpTo is tlsPair with the client's highest TLS version (0: the
// default, TLS 1.3).
func tlsPairUpTo(t *testing.T, version uint16) (client *tls.Conn, raw *holdConn, gw *tls.Conn) {
	t.Helper()
	c, s := tcpPair(t)
	cert := testcert.New(t)
	raw = &holdConn{TCPConn: c.(*net.TCPConn)}
	client = tls.Client(raw, &tls.Config{RootCAs: cert.Pool, ServerName: "localhost", MaxVersion: version})
	gw = tls.Server(s, &tls.Config{Certificates: []tls.Certificate{cert.TLS}})
	done := make(chan error, 1)
	go func() { done <- gw.Handshake() }()
	client.SetDeadline(time.Now().Add(5 * time.Second))
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	client.SetDeadline(time.Time{})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return client, raw, gw
}

// tlsParkedSession is parkedSession over TLS, with the client's socket
// to send records by hand.
func tlsParkedSession(t *testing.T) (ws *wsSession, client *tls.Conn, raw *holdConn, server net.Conn, ended chan struct{}) {
	t.Helper()
	var c net.Conn
	ws, c, server, ended = parkedSession(t, func(t *testing.T) (net.Conn, net.Conn) {
		var gw net.Conn
		client, raw, gw = tlsPair(t)
		return client, gw
	})
	return ws, c.(*tls.Conn), raw, server, ended
}

// clientParked waits until the client's pump of ws is parked.
func clientParked(t *testing.T, ws *wsSession) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		ws.mu.Lock()
		parked := ws.toBack.parked
		ws.mu.Unlock()
		if parked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the client's pump did not park")
		}
	}
}

// records returns the TLS records the client writes for frames, each
// frame a record of its own, not yet sent.
func records(t *testing.T, client *tls.Conn, raw *holdConn, frames ...[]byte) [][]byte {
	t.Helper()
	raw.hold()
	for _, f := range frames {
		if _, err := client.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	r := raw.take()
	if len(r) != len(frames) {
		t.Fatalf("%d frames written as %d records", len(frames), len(r))
	}
	return r
}

// expectFrame reads a frame from the server and fails t unless it is one
// of the client's, with payload want.
func expectFrame(t *testing.T, server net.Conn, want string) {
	t.Helper()
	op, p := readFrame(t, server)
	if op != 0x1 || len(p) != 4+len(want) {
		t.Fatalf("server got opcode %#x %q, want the text frame %q", op, p, want)
	}
	for i := range want {
		p[4+i] ^= p[i%4] // unmask
	}
	if string(p[4:]) != want {
		t.Fatalf("server got %q, want %q", p[4:], want)
	}
}

// TestTLSTimeoutNotKept holds crypto/tls to what tlsIdle relies on: a
// read that times out is not the connection's end (crypto/tls keeps only
// errors that are not temporary), a read under a deadline in the past
// does not touch the socket, and a record whose first bytes came before
// a timeout is completed by the bytes that come after it.
func TestTLSTimeoutNotKept(t *testing.T) {
	client, raw, gw := tlsPair(t)
	r := records(t, client, raw, []byte("hello"))
	if _, err := raw.TCPConn.Write(r[0][:7]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	for _, dl := range []time.Time{aLongTimeAgo, time.Now().Add(50 * time.Millisecond), aLongTimeAgo} {
		gw.SetReadDeadline(dl)
		if n, err := gw.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a read of a record cut short: %d bytes, %v; want a timeout", n, err)
		}
	}
	if _, err := raw.TCPConn.Write(r[0][7:]); err != nil {
		t.Fatal(err)
	}
	gw.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := gw.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("after the timeouts, read %q, %v; want the record's %q", buf[:n], err, "hello")
	}
}

// TestTLSRecordSplit: records reach the gateway cut anywhere, or several
// at once: the client's pump relays what a whole record holds, parks with
// a record cut short held by its TLS connection (a cut in the record's
// header, or in its body), and relays the frame once the rest comes.
// Two whole records in one segment are both relayed: the second, held by
// the TLS connection and not by the socket, does not let the pump park.
func TestTLSRecordSplit(t *testing.T) {
	ws, client, raw, server, _ := tlsParkedSession(t)
	send := func(b []byte) {
		t.Helper()
		if _, err := raw.TCPConn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	for _, cut := range []int{1, 3, 5, 9} {
		r := records(t, client, raw, frame(0x1, []byte("first"), true), frame(0x1, []byte("second"), true))
		if cut >= len(r[1]) {
			t.Fatalf("a record of %d bytes cut at %d", len(r[1]), cut)
		}
		send(append(r[0], r[1][:cut]...))
		expectFrame(t, server, "first")
		clientParked(t, ws)
		// Parked with the cut record held: nothing was relayed of it.
		server.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := server.Read(make([]byte, 16)); err == nil {
			t.Fatalf("cut at %d: %d bytes relayed before the record was whole", cut, n)
		}
		send(r[1][cut:])
		expectFrame(t, server, "second")
		clientParked(t, ws)
	}
	// A record's first bytes alone, then the rest: the pump waits for it.
	r := records(t, client, raw, frame(0x1, []byte("alone"), true))
	send(r[0][:4])
	time.Sleep(50 * time.Millisecond)
	send(r[0][4:])
	expectFrame(t, server, "alone")
	// Two whole records in one segment.
	r = records(t, client, raw, frame(0x1, []byte("one"), true), frame(0x1, []byte("two"), true))
	send(append(r[0], r[1]...))
	expectFrame(t, server, "one")
	expectFrame(t, server, "two")
	clientParked(t, ws)
}

// TestTLSBursts: many records in one write (each probe after a frame
// finds the next record held by the TLS connection, not by the socket),
// and a frame larger than a record (its records read while the frame is
// copied): every byte is relayed, in order, and the pump parks after.
func TestTLSBursts(t *testing.T) {
	ws, client, raw, server, _ := tlsParkedSession(t)
	var frames [][]byte
	for i := range 200 {
		frames = append(frames, frame(0x1, fmt.Appendf(nil, "burst %d", i), true))
	}
	var all []byte
	for _, r := range records(t, client, raw, frames...) {
		all = append(all, r...)
	}
	if _, err := raw.TCPConn.Write(all); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		expectFrame(t, server, fmt.Sprintf("burst %d", i))
	}
	clientParked(t, ws)
	big := make([]byte, 256<<10)
	for i := range big {
		big[i] = byte(i % 251)
	}
	go client.Write(frame(0x2, big, true))
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(server)
	hdr := make([]byte, 14) // 2, the 64-bit length, the mask key
	if _, err := io.ReadFull(br, hdr); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(big))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatalf("the large frame cut short: %v", err)
	}
	for i := range got {
		if got[i]^hdr[10+i%4] != big[i] {
			t.Fatalf("the large frame differs at byte %d", i)
		}
	}
	clientParked(t, ws)
}

// TestTLSParkedHangUps: a client whose TLS connection ends while the
// pumps are parked ends the session, the server's connection closed:
// by a close_notify alone (its socket left open), or by a reset.
func TestTLSParkedHangUps(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(client *tls.Conn, raw *holdConn)
	}{
		{"close_notify", func(client *tls.Conn, _ *holdConn) { client.CloseWrite() }},
		{"reset", func(_ *tls.Conn, raw *holdConn) {
			raw.SetLinger(0)
			raw.TCPConn.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, client, raw, server, ended := tlsParkedSession(t)
			tc.end(client, raw)
			sessionGone(t, ended, server)
		})
	}
}

// probeConn is the gateway's end of a TLS connection behind a wrapper (as
// the HTTP/1.1 server hands net/http a connection), which calls onProbe
// once, in the first read of a probe (tlsIdle), before reading.
type probeConn struct {
	*tls.Conn
	ws      *wsSession
	onProbe func()
	once    sync.Once
}

func (c *probeConn) Buffered() int     { return 0 }
func (c *probeConn) NetConn() net.Conn { return c.Conn }

func (c *probeConn) Read(b []byte) (int, error) {
	c.ws.mu.Lock()
	probing := c.ws.toBack.probing
	c.ws.mu.Unlock()
	if probing {
		c.once.Do(c.onProbe)
	}
	return c.Conn.Read(b)
}

// TestTLSCloseWithDuringProbe: CloseWith while the client's pump probes
// its TLS connection: the read deadline CloseWith sets (the client's
// second to answer its close) is the one in force after the probe, not
// the probe's past one (the session would end at once) nor the zero the
// probe puts back (it would never end, the client not answering).
func TestTLSCloseWithDuringProbe(t *testing.T) {
	client, _, gw := tlsPair(t)
	gwBack, server := tcpPair(t)
	pc := &probeConn{Conn: gw}
	ws := newSession(pc, bufio.NewReader(pc), gwBack, bufio.NewReader(gwBack))
	pc.ws = ws
	var closedAt time.Time
	pc.onProbe = func() {
		ws.CloseWith(CloseServiceRestart, "switch")
		closedAt = time.Now()
	}
	ended := make(chan struct{})
	ws.onEnd = func() { close(ended) }
	ws.start()
	if op, _ := readFrame(t, client); op != 0x8 {
		t.Fatalf("client got opcode %#x, want the close frame", op)
	}
	if op, _ := readFrame(t, server); op != 0x8 {
		t.Fatalf("server got opcode %#x, want a close frame", op)
	}
	// The client does not answer: the deadline ends the session a second
	// after CloseWith.
	select {
	case <-ended:
		if d := time.Since(closedAt); d < 800*time.Millisecond {
			t.Fatalf("the session ended %v after CloseWith, before the client's second to answer", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the session did not end at CloseWith's read deadline")
	}
}

// TestTLSUpgradeParks: a websocket over HTTPS, through tandem's HTTP/1.1
// server (its own hijack of the *tls.Conn, or net/http's of the
// connection handed over with the bytes read of it): once idle, the
// client's side parks its TLS connection's socket, then relays an echo
// both ways and parks again; the client's close_notify ends the session.
func TestTLSUpgradeParks(t *testing.T) {
	srv := servertest.New(t, func(c net.Conn, req *servertest.Request, _ int) bool {
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		// Echo up to 10 frames (their payloads unmasked), for 5s at most.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		for range 10 {
			var hdr [6]byte
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				return false
			}
			p := make([]byte, hdr[1]&0x7f)
			if _, err := io.ReadFull(br, p); err != nil {
				return false
			}
			for i := range p {
				p[i] ^= hdr[2+i%4]
			}
			c.Write(frame(0x1, p, false))
		}
		return false
	})
	h := newHarness(t, "", srv.Addr())
	cert := testcert.New(t)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := &h1.Server{Handler: h.p, Fallback: &http.Server{Handler: h.p}, TLSConfig: tlsCfg,
		MaxHeaderBytes: 1 << 20, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
	go front.Serve(ln)
	t.Cleanup(func() { front.Close() })

	for _, tc := range []struct {
		name, connection string
		fast             bool // the fast path hijacks: its *tls.Conn
	}{
		{"fast path", "Upgrade", true},
		{"handed to net/http", "Upgrade, X-Hop", false}, // a token the fast path leaves to net/http
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: cert.Pool, ServerName: "localhost"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: "+tc.connection+"\r\nX-Hop: 1\r\nUpgrade: websocket\r\n"+
				"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("handshake: %v %v", resp, err)
			}
			ws := sessionOf(t, c.LocalAddr().String())
			if _, ok := ws.client.(*tls.Conn); ok != tc.fast {
				t.Fatalf("the relay got a %T from the server's hijack", ws.client)
			}
			waitParked(t, ws)
			for i := range 3 {
				msg := fmt.Sprintf("echo %d", i)
				c.Write(frame(0x1, []byte(msg), true))
				var hdr [2]byte
				p := make([]byte, len(msg))
				if _, err := io.ReadFull(br, hdr[:]); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(br, p); err != nil || string(p) != msg {
					t.Fatalf("echo %q %v, want %q", p, err, msg)
				}
				waitParked(t, ws)
			}
			c.CloseWrite() // close_notify
			for deadline := time.Now().Add(3 * time.Second); h.p.upgraded.Len() > 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the session did not end after the client's close_notify")
				}
			}
		})
	}
}

// sessionOf waits until a pump of the websocket of the client at addr
// is parked, and returns its session.
func sessionOf(t *testing.T, addr string) *wsSession {
	t.Helper()
	k := getParker()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		k.mu.Lock()
		for _, p := range k.parked {
			if p.ws.client.RemoteAddr().String() == addr {
				k.mu.Unlock()
				return p.ws
			}
		}
		k.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no pump of the websocket of %s parked", addr)
		}
	}
}
