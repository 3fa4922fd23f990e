package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/servertest"
)

// TestCutBodyRelayedSoFar: a server that cuts its body after the head
// and some of it: the client gets the head and the bytes that came, then
// the cut, from a listener served by net/http's server (the front here,
// and every listener with engine net/http), which drops what it buffered
// when a handler aborts: respond flushes first.
func TestCutBodyRelayedSoFar(t *testing.T) {
	forEngines(t, func(t *testing.T, engine string) {
		srv := servertest.New(t, func(c net.Conn, _ *servertest.Request, _ int) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
			time.Sleep(50 * time.Millisecond) // the bytes go through before the cut
			c.Close()
			return false
		})
		h := newEngineHarness(t, engine, "", srv.Addr())
		c := dialFront(t, h.serve(t).Listener.Addr().String())
		io.WriteString(c, "GET /cut HTTP/1.1\r\nHost: app.test\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no head before the cut: %v", err)
		}
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "0123456789" || err != io.ErrUnexpectedEOF {
			t.Errorf("got %d %q %v; want 200, the 10 bytes that came, then the cut", resp.StatusCode, b, err)
		}
	})
}
