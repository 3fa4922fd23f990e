package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// parkedSession starts a session between two loopback pairs, the client's
// made by pair, and waits until both of its pumps are parked.
func parkedSession(t *testing.T, pair func(*testing.T) (net.Conn, net.Conn)) (ws *wsSession, client, server net.Conn, ended chan struct{}) {
	t.Helper()
	client, gwClient := pair(t)
	gwBack, server := tcpPair(t)
	ws = newSession(gwClient, bufio.NewReader(gwClient), gwBack, bufio.NewReader(gwBack))
	ended = make(chan struct{})
	ws.onEnd = func() { close(ended) }
	ws.start()
	waitParked(t, ws)
	return ws, client, server, ended
}

// clientSides are the client connections a session parks with: plain
// TCP, and TLS over it (the client's side then parks its TLS
// connection's socket).
var clientSides = []struct {
	name string
	pair func(*testing.T) (net.Conn, net.Conn)
}{
	{"tcp", tcpPair},
	{"tls", func(t *testing.T) (net.Conn, net.Conn) {
		c, _, gw := tlsPair(t)
		return c, gw
	}},
	{"tls1.2", func(t *testing.T) (net.Conn, net.Conn) {
		c, _, gw := tlsPairUpTo(t, tls.VersionTLS12)
		if v := c.ConnectionState().Version; v != tls.VersionTLS12 {
			t.Fatalf("TLS version %#x, want 1.2", v)
		}
		return c, gw
	}},
}

// forClientSides runs test once with each of clientSides, as a subtest.
func forClientSides(t *testing.T, test func(t *testing.T, pair func(*testing.T) (net.Conn, net.Conn))) {
	for _, side := range clientSides {
		t.Run(side.name, func(t *testing.T) { test(t, side.pair) })
	}
}

func waitParked(t *testing.T, ws *wsSession) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		ws.mu.Lock()
		both := ws.toClient.parked && ws.toBack.parked
		ws.mu.Unlock()
		if both {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the pumps of an idle websocket did not park")
		}
	}
}

func readFrame(t *testing.T, c net.Conn) (op byte, payload []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("no frame: %v", err)
	}
	n := int(hdr[1] & 0x7f)
	if hdr[1]&0x80 != 0 {
		n += 4 // the mask key, read with the payload
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c, payload); err != nil {
		t.Fatalf("frame cut: %v", err)
	}
	return hdr[0] & 0x0f, payload
}

// TestIdlePumpsPark: an idle websocket holds no goroutine (both pumps
// park); frames either way wake the pump of that side, which relays them
// and parks again.
func TestIdlePumpsPark(t *testing.T) { forClientSides(t, testIdlePumpsPark) }

func testIdlePumpsPark(t *testing.T, pair func(*testing.T) (net.Conn, net.Conn)) {
	ws, client, server, _ := parkedSession(t, pair)
	for i := range 3 {
		if _, err := server.Write([]byte{0x81, 2, 'h', byte('0' + i)}); err != nil {
			t.Fatal(err)
		}
		if op, p := readFrame(t, client); op != 0x1 || string(p) != "h"+string(rune('0'+i)) {
			t.Fatalf("client got opcode %#x %q", op, p)
		}
		if _, err := client.Write(frame(0x2, []byte("up"), true)); err != nil {
			t.Fatal(err)
		}
		if op, _ := readFrame(t, server); op != 0x2 {
			t.Fatalf("server got opcode %#x", op)
		}
		waitParked(t, ws)
	}
}

// TestCloseWithWakesParked: a switch closing a parked websocket still
// sends the client its close frame (1012) and the server a close, and
// the session ends once the client answers.
func TestCloseWithWakesParked(t *testing.T) { forClientSides(t, testCloseWithWakesParked) }

func testCloseWithWakesParked(t *testing.T, pair func(*testing.T) (net.Conn, net.Conn)) {
	ws, client, server, ended := parkedSession(t, pair)
	ws.CloseWith(CloseServiceRestart, "switch")
	op, p := readFrame(t, client)
	if op != 0x8 || len(p) < 2 || uint16(p[0])<<8|uint16(p[1]) != CloseServiceRestart {
		t.Fatalf("client got opcode %#x %q, want close 1012", op, p)
	}
	if op, _ := readFrame(t, server); op != 0x8 {
		t.Fatalf("server got opcode %#x, want a close frame", op)
	}
	client.Write(closeFrame(CloseServiceRestart, "", true))
	select {
	case <-ended:
	case <-time.After(3 * time.Second):
		t.Fatal("the session did not end after the close handshake")
	}
}

// TestParkedClientGone: a client that leaves while both pumps are parked
// ends the session: the server's connection is closed too.
func TestParkedClientGone(t *testing.T) { forClientSides(t, testParkedClientGone) }

func testParkedClientGone(t *testing.T, pair func(*testing.T) (net.Conn, net.Conn)) {
	_, client, server, ended := parkedSession(t, pair)
	client.Close()
	sessionGone(t, ended, server)
}

// sessionGone fails t unless the session of a client that left ends
// soon, the server's connection closed.
func sessionGone(t *testing.T, ended chan struct{}, server net.Conn) {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(3 * time.Second):
		t.Fatal("the session of a client that left did not end")
	}
	server.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := server.Read(make([]byte, 64)); err == nil {
		t.Fatal("the server's connection is still open")
	}
}

// TestParkedServerGone: a server that dies while both pumps are parked
// gets the client a 1012 close at once.
func TestParkedServerGone(t *testing.T) { forClientSides(t, testParkedServerGone) }

func testParkedServerGone(t *testing.T, pair func(*testing.T) (net.Conn, net.Conn)) {
	_, client, server, _ := parkedSession(t, pair)
	server.Close()
	if op, p := readFrame(t, client); op != 0x8 || uint16(p[0])<<8|uint16(p[1]) != CloseServiceRestart {
		t.Fatalf("client got opcode %#x %q, want close 1012", op, p)
	}
}

// TestParkChurn: many websockets waking, parking, closed from either side
// or by a switch at once: every session ends and none is left parked
// (a socket left in the set would be a leak, or a wrong wake-up once its
// number is reused).
func TestParkChurn(t *testing.T) { forClientSides(t, testParkChurn) }

func testParkChurn(t *testing.T, pair func(*testing.T) (net.Conn, net.Conn)) {
	const n = 100
	var sessions []*wsSession
	var ends []chan struct{}
	var clients, servers []net.Conn
	for range n {
		ws, c, s, e := parkedSession(t, pair)
		sessions, ends, clients, servers = append(sessions, ws), append(ends, e), append(clients, c), append(servers, s)
	}
	for i := range n {
		go func() {
			servers[i].Write([]byte{0x81, 1, 'x'})
			clients[i].Write(frame(0x1, []byte("y"), true))
			switch i % 3 {
			case 0:
				clients[i].Close()
			case 1:
				servers[i].Close()
			default:
				sessions[i].CloseWith(CloseServiceRestart, "switch")
				clients[i].Close()
			}
		}()
	}
	for i, e := range ends {
		select {
		case <-e:
		case <-time.After(5 * time.Second):
			t.Fatalf("session %d did not end", i)
		}
	}
	k := getParker()
	k.mu.Lock()
	left := 0
	for _, p := range k.parked {
		for _, ws := range sessions {
			if p.ws == ws {
				left++
			}
		}
	}
	k.mu.Unlock()
	if left > 0 {
		t.Fatalf("%d pumps of ended sessions still parked", left)
	}
}
