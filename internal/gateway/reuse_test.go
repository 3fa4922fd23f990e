package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestRequestNotKept holds the gateway's handler to the fast path's
// contract (h1.Server.Handler): no request, Header or URL is kept past the
// handler's return. The fast path reuses them for the connection's next
// request, so under the race detector (scripts/test runs this package with
// -race) any goroutine still reading one after its handler returned is a
// reported race. Every kind of exchange runs on kept-alive connections,
// several at once: plain and retried GETs, POSTs with a body, a HEAD, a
// client that leaves mid-request, a server that fails under a request
// (abandoned, replayed), and websockets, logged when their session ends.
func TestRequestNotKept(t *testing.T) {
	var failing sync.Map // paths the master answers by closing the connection
	slow := make(chan struct{})
	master := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/status":
			io.WriteString(w, `{"version":"1"}`)
		case "/slow":
			select {
			case <-slow:
			case <-r.Context().Done():
			}
		case "/websocket":
			echoWebsocket(w, r)
		default:
			if _, ok := failing.Load(r.URL.Path); ok {
				hj, _ := w.(http.Hijacker)
				conn, _, _ := hj.Hijack()
				conn.Close() // no answer: a GET is replayed on the backup
				return
			}
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "master %s %s %d", r.Method, r.Header.Get("X-Test"), len(body))
		}
	}))
	t.Cleanup(func() { close(slow); master.Close() })
	backup := app(t, "failover")
	// testConfig's, with the access log on (its lines read the request too)
	// and passive ejection held off while paths fail on purpose.
	cfg := "log: {format: text, level: debug, access: true}\n" + testConfig(master, backup) + "    passive: {maxFails: 1000}\n"
	g := startGateway(t, cfg, discard())
	base := "http://" + g.Addr("http")
	failing.Store("/gone", true)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("X-Test", path)
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", method, path, err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				path := fmt.Sprintf("/w%d/%d?q=%d", w, i, i)
				if code, body := do("GET", path, ""); code != 200 || body != "master GET "+path+" 0" {
					t.Errorf("GET %s: %d %q", path, code, body)
				}
				if code, body := do("POST", path, "payload"); code != 200 || body != "master POST "+path+" 7" {
					t.Errorf("POST %s: %d %q", path, code, body)
				}
				if code, _ := do("HEAD", path, ""); code != 200 {
					t.Errorf("HEAD %s: %d", path, code)
				}
				if code, body := do("GET", "/gone", ""); code != 200 || body != "failover" {
					t.Errorf("GET /gone (replayed on the backup): %d %q", code, body)
				}
			}
		})
	}
	wg.Go(func() {
		// Clients that leave while their request waits on the server.
		for range 10 {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			req, _ := http.NewRequestWithContext(ctx, "GET", base+"/slow", nil)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
				t.Error("GET /slow answered before the server did")
			}
			cancel()
		}
	})
	wg.Go(func() {
		for i := range 10 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, _, err := websocket.Dial(ctx, "ws://"+g.Addr("http")+"/websocket", nil)
			if err != nil {
				t.Errorf("websocket %d: %v", i, err)
				cancel()
				continue
			}
			msg := fmt.Sprintf("frame %d", i)
			if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Errorf("websocket %d write: %v", i, err)
			} else if _, b, err := c.Read(ctx); err != nil || string(b) != msg {
				t.Errorf("websocket %d echo: %q %v", i, b, err)
			}
			c.Close(websocket.StatusNormalClosure, "")
			cancel()
		}
	})
	wg.Wait()
}
