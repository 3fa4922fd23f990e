package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawRequest sends raw bytes to addr and returns the status code of the
// answer, or 0 when the connection was closed without one.
func rawRequest(t *testing.T, addr, raw string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return 0, ""
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// TestHostileRequests: malformed and smuggling-shaped requests get a 4xx
// or a closed connection and never reach a server as written; the gateway
// keeps serving others.
func TestHostileRequests(t *testing.T) {
	master := startApp(t, "master", "")
	g := startGateway(t, gwConfig(master)+healthCfg+wsCfg)
	cases := []struct {
		name string
		raw  string
		want []int // any of these; 0 = connection closed without an answer
	}{
		{"duplicate differing Content-Length", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", []int{400}},
		{"space in header name", "GET /hello HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", []int{400}},
		{"unknown transfer coding", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", []int{400, 501}},
		{"no Host in HTTP/1.1", "GET /hello HTTP/1.1\r\n\r\n", []int{400}},
		{"bad method token", "G@T /hello HTTP/1.1\r\nHost: a\r\n\r\n", []int{400}},
		{"CR inside a header value", "GET /hello HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", []int{400}},
		{"NUL in a header value", "GET /hello HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", []int{400}},
		{"bad chunk size", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", []int{400, 502, 0}},
		{"websocket guard: GET without upgrade", "GET /websocket HTTP/1.1\r\nHost: a\r\n\r\n", []int{403}},
		{"websocket guard: upgrade to something else", "GET /websocket HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", []int{403}},
		{"oversized header", "GET /hello HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 200<<10) + "\r\n\r\n", []int{431, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := rawRequest(t, g.addr, tc.raw)
			ok := false
			for _, w := range tc.want {
				ok = ok || code == w
			}
			if !ok {
				t.Errorf("got %d %q, want one of %v", code, body, tc.want)
			}
		})
	}
	// obs-fold: RFC 9112 allows a server to replace it with spaces instead of
	// refusing; Go's parser does, so no line break reaches a server.
	code, body := rawRequest(t, g.addr, "GET /headers HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n")
	if code != 400 && !(code == 200 && strings.Contains(body, `"X-A":["b c"]`)) {
		t.Errorf("obs-fold: %d %q; want 400 or the value unfolded", code, body)
	}
	// Content-Length with Transfer-Encoding: the gateway frames the body by
	// Transfer-Encoding and re-frames it, so the server sees one request of
	// 0 bytes and no smuggled second one.
	code, body = rawRequest(t, g.addr, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
	if code != 400 && !(code == 200 && strings.HasPrefix(body, "master POST 0 ")) {
		t.Errorf("CL+TE request: %d %q", code, body)
	}
	if got := get(http.DefaultClient, "http://"+g.addr+"/hello"); got.status != 200 {
		t.Errorf("after hostile input, a normal request got %d %v", got.status, got.err)
	}
}

// TestSlowloris: a client that sends its headers too slowly is cut off at
// the read-header timeout while other clients are served.
func TestSlowloris(t *testing.T) {
	master := startApp(t, "master", "")
	cfg := strings.Replace(gwConfig(master), "groups:", "limits: {readHeaderTimeout: 500ms}\ngroups:", 1)
	g := startGateway(t, cfg+healthCfg)
	var conns []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /hello HTTP/1.1\r\nHost: a\r\n")
		conns = append(conns, c)
	}
	if r := get(http.DefaultClient, "http://"+g.addr+"/hello"); r.status != 200 {
		t.Errorf("a normal client beside slow ones got %d %v", r.status, r.err)
	}
	start := time.Now()
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		// Keep trickling; the gateway must close the connection anyway.
		io.WriteString(c, "X-Slow: 1\r\n")
		// EOF or a reset both mean the gateway closed it; a timeout does not.
		if _, err := io.ReadAll(c); err != nil && !strings.Contains(err.Error(), "reset") {
			t.Errorf("slow connection %d not closed by the gateway: %v", i, err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("slow connections closed after %v, want about the 500ms read-header timeout", d)
	}
}

// TestConnectionLimit: a flood of idle connections holds at most
// limits.maxConnections of the gateway; the next client waits in the
// backlog and is served as soon as one of them closes.
func TestConnectionLimit(t *testing.T) {
	master := startApp(t, "master", "")
	cfg := strings.Replace(gwConfig(master), "groups:", "limits: {maxConnections: 5, readHeaderTimeout: 30s}\ngroups:", 1)
	g := startGateway(t, cfg+healthCfg)
	var idle []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	metricIs(t, g, `tandem_connections_open{listener="http"}`, 5)
	// The sixth connects (the kernel's backlog takes it) but is not served.
	answered := make(chan result, 1)
	go func() { answered <- get(&http.Client{Timeout: 10 * time.Second}, "http://"+g.addr+"/hello") }()
	select {
	case r := <-answered:
		t.Fatalf("a sixth connection was served at the bound of 5: %d %v", r.status, r.err)
	case <-time.After(time.Second):
	}
	if n := scrape(t, g)[`tandem_connection_limit_waits_total{listener="http"}`]; n < 1 {
		t.Errorf("tandem_connection_limit_waits_total = %v with a client waiting, want at least 1", n)
	}
	idle[0].Close()
	select {
	case r := <-answered:
		if r.status != 200 || r.server != "master" {
			t.Errorf("after a slot freed: %d %q %v, want 200 from master", r.status, r.server, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting client was not served after a connection closed")
	}
	if !strings.Contains(g.out.String(), "connection limit reached") {
		t.Error("the gateway did not log reaching the connection limit")
	}
}

// h2Frame encodes one HTTP/2 frame.
func h2Frame(typ, flags byte, stream uint32, payload []byte) []byte {
	n := len(payload)
	f := []byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags,
		byte(stream >> 24 & 0x7f), byte(stream >> 16), byte(stream >> 8), byte(stream)}
	return append(f, payload...)
}

// TestHTTP2RapidReset: a client that opens and cancels streams as fast as it
// can (CVE-2023-44487) does not stop the gateway serving other clients.
func TestHTTP2RapidReset(t *testing.T) {
	master := startApp(t, "master", "")
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	cfg := strings.Replace(gwConfig(master), "{name: http, address: LISTEN}",
		"{name: http, address: LISTEN, tls: {cert: "+certFile+", key: "+keyFile+"}}", 1)
	g := startGateway(t, cfg+healthCfg)

	c, err := tls.Dial("tcp", g.addr, &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	// The server's frames: after the attack, one last stream is not
	// cancelled; its answer (or a GOAWAY) proves the server read every
	// frame before it, since HTTP/2 frames are handled in order.
	const streams = 5000
	last := uint32(2*streams + 1)
	processed := make(chan string, 1)
	go func() {
		br := bufio.NewReader(c)
		var hdr [9]byte
		for {
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				processed <- "connection closed: " + err.Error()
				return
			}
			n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
			id := uint32(hdr[5]&0x7f)<<24 | uint32(hdr[6])<<16 | uint32(hdr[7])<<8 | uint32(hdr[8])
			if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
				processed <- "connection closed: " + err.Error()
				return
			}
			switch {
			case hdr[3] == 0x1 && id == last:
				processed <- "answered"
				return
			case hdr[3] == 0x7:
				processed <- "GOAWAY"
				return
			}
		}
	}()
	var b bytes.Buffer
	b.WriteString("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	b.Write(h2Frame(0x4, 0, 0, nil)) // SETTINGS
	// HPACK: :method GET, :scheme https, :path /hello, :authority.
	block := []byte{0x82, 0x87, 0x04, 6}
	block = append(block, "/hello"...)
	block = append(block, 0x01, byte(len(g.addr)))
	block = append(block, g.addr...)
	for i := uint32(0); i < streams; i++ {
		id := 2*i + 1
		b.Write(h2Frame(0x1, 0x5, id, block))              // HEADERS, END_STREAM|END_HEADERS
		b.Write(h2Frame(0x3, 0, id, []byte{0, 0, 0, 0x8})) // RST_STREAM CANCEL
	}
	b.Write(h2Frame(0x1, 0x5, last, block))
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	attackDone := make(chan error, 1)
	go func() { _, err := c.Write(b.Bytes()); attackDone <- err }()

	// Other clients are served while the attack runs and after it.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	for i := range 20 {
		resp, err := client.Get("https://" + g.addr + "/hello")
		if err != nil {
			t.Fatalf("request %d during the rapid reset: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d during the rapid reset: %d", i, resp.StatusCode)
		}
	}
	<-attackDone
	resp, err := client.Get("https://" + g.addr + "/hello")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the rapid reset: %v", err)
	}
	resp.Body.Close()
	select {
	case how := <-processed:
		if how != "answered" && how != "GOAWAY" {
			t.Errorf("the attacking connection ended before the server read the attack: %s", how)
		}
		t.Logf("after %d cancelled streams, the attacking connection got: %s", streams, how)
	case <-time.After(5 * time.Second):
		t.Error("the server neither answered the stream after the attack nor sent GOAWAY within 5s")
	}
}

// TestBogusWebsocket: handshakes a server refuses are relayed as refused,
// and frames that break the protocol end that connection only.
func TestBogusWebsocket(t *testing.T) {
	master := startApp(t, "master", "")
	g := startGateway(t, gwConfig(master)+healthCfg+wsCfg)
	for name, raw := range map[string]string{
		"no key":          "GET /websocket HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
		"unknown version": "GET /websocket HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 99\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
		"POST upgrade":    "POST /websocket HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n",
	} {
		if code, _ := rawRequest(t, g.addr, raw); code < 400 || code > 499 {
			t.Errorf("%s: status %d, want 4xx", name, code)
		}
	}

	// A valid handshake, then a frame longer than any sane message and an
	// unmasked client frame: the connection ends, nothing else does.
	for name, frame := range map[string][]byte{
		"absurd length":  {0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4},
		"unmasked frame": {0x81, 0x05, 'h', 'e', 'l', 'l', 'o'},
	} {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /websocket HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("%s: handshake %v %v", name, resp, err)
		}
		c.Write(frame)
		if _, err := io.Copy(io.Discard, br); err != nil && !strings.Contains(err.Error(), "reset") {
			t.Errorf("%s: connection not closed: %v", name, err)
		}
		c.Close()
	}
	if r := get(http.DefaultClient, "http://"+g.addr+"/hello"); r.status != 200 {
		t.Errorf("after bogus websockets: %d %v", r.status, r.err)
	}
}
