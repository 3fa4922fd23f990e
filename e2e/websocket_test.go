package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const wsCfg = `    websocket: {paths: [/websocket], requireUpgrade: true, onSwitch: close}
`

// wsClient is one websocket through the gateway, read until it closes.
type wsClient struct {
	hello    string
	closedAt time.Time
	code     websocket.StatusCode
	done     chan struct{}
}

func dialWS(t *testing.T, addr string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/websocket", nil)
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("websocket first message: %v", err)
	}
	w := &wsClient{hello: string(msg), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, _, err := c.Read(rctx)
			cancel()
			if err != nil {
				w.closedAt, w.code = time.Now(), websocket.CloseStatus(err)
				c.CloseNow()
				return
			}
		}
	}()
	t.Cleanup(func() { c.CloseNow() })
	return w
}

func dialAll(t *testing.T, addr string, n int) []*wsClient {
	var ws []*wsClient
	for range n {
		ws = append(ws, dialWS(t, addr))
	}
	return ws
}

// expectClosed checks every client got code within limit of since.
func expectClosed(t *testing.T, ws []*wsClient, code websocket.StatusCode, since time.Time, limit time.Duration) {
	t.Helper()
	for i, w := range ws {
		select {
		case <-w.done:
		case <-time.After(limit + 2*time.Second):
			t.Fatalf("websocket %d still open %v after the switch", i, limit+2*time.Second)
		}
		if w.code != code {
			t.Errorf("websocket %d closed with code %d, want %d", i, w.code, code)
		}
		if d := w.closedAt.Sub(since); d > limit {
			t.Errorf("websocket %d closed %v after the switch, want within %v", i, d, limit)
		}
	}
}

// lastSwitch asks the admin API when the group last switched, and to whom.
func lastSwitch(t *testing.T, g *gw) (time.Time, string) {
	t.Helper()
	resp, err := http.Get("http://" + g.admin + "/api/v1/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Groups []struct {
			History []struct {
				At time.Time
				To string
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	h := st.Groups[0].History
	return h[len(h)-1].At, h[len(h)-1].To
}

// waitSwitch waits until the group's last switch went to server and
// returns when it happened.
func waitSwitch(t *testing.T, g *gw, server string) time.Time {
	t.Helper()
	var at time.Time
	if !untilTrue(5*time.Second, func() bool { var to string; at, to = lastSwitch(t, g); return to == server }) {
		t.Fatalf("no switch to %s within 5s", server)
	}
	return at
}

// TestWebsocketSwitch: websockets follow the active role. On failover and
// on failback each client gets close code 1012 within a second and its
// reconnect lands on the new active server; the guard refuses a plain GET.
func TestWebsocketSwitch(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	g := startGateway(t, gwConfig(master, backup)+healthCfg+wsCfg+"    failback: {policy: auto}\n")

	resp, err := http.Get("http://" + g.addr + "/websocket")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("plain GET /websocket: %d, want 403", resp.StatusCode)
	}

	ws := dialAll(t, g.addr, 10)
	for _, w := range ws {
		if w.hello != "hello from master" {
			t.Fatalf("websocket greeted with %q, want the master", w.hello)
		}
	}
	killAt := time.Now()
	master.kill()
	expectClosed(t, ws, websocket.StatusServiceRestart, killAt, time.Second)
	ws = dialAll(t, g.addr, 10)
	for _, w := range ws {
		if w.hello != "hello from failover" {
			t.Fatalf("reconnect greeted with %q, want the failover", w.hello)
		}
	}

	// Failback: the master returns; connections on the failover lose the
	// active role and are told to reconnect.
	startApp(t, "master", master.addr)
	at := waitSwitch(t, g, "master")
	expectClosed(t, ws, websocket.StatusServiceRestart, at, time.Second)
	if w := dialWS(t, g.addr); w.hello != "hello from master" {
		t.Errorf("after failback, reconnect greeted with %q, want the master", w.hello)
	}
}

// TestWebsocketFreeze: a frozen master's websockets are closed with 1012
// once the health checks take it out.
func TestWebsocketFreeze(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	g := startGateway(t, gwConfig(master, backup)+healthCfg+wsCfg+"    failback: {policy: manual}\n")
	ws := dialAll(t, g.addr, 5)
	master.signal(syscall.SIGSTOP)
	at := waitSwitch(t, g, "failover")
	expectClosed(t, ws, websocket.StatusServiceRestart, at, time.Second)
	if w := dialWS(t, g.addr); w.hello != "hello from failover" {
		t.Errorf("reconnect greeted with %q, want the failover", w.hello)
	}
}

// TestShutdown: SIGTERM lets an in-flight request finish, closes websockets
// with 1001 (going away) and exits 0 within the drain period.
func TestShutdown(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	cfg := strings.Replace(gwConfig(master, backup), "groups:", "limits: {drain: 5s}\ngroups:", 1)
	g := startGateway(t, cfg+healthCfg+wsCfg)
	ws := dialAll(t, g.addr, 3)

	var wg sync.WaitGroup
	var slowStatus int
	var slowErr error
	wg.Go(func() {
		resp, err := http.Get("http://" + g.addr + "/slow?ms=1500")
		if err != nil {
			slowErr = err
			return
		}
		resp.Body.Close()
		slowStatus = resp.StatusCode
	})
	time.Sleep(300 * time.Millisecond)
	termAt := time.Now()
	g.signal(syscall.SIGTERM)
	wg.Wait()
	if slowErr != nil || slowStatus != 200 {
		t.Errorf("in-flight request across SIGTERM: status %d, err %v; want 200", slowStatus, slowErr)
	}
	expectClosed(t, ws, websocket.StatusGoingAway, termAt, 4*time.Second)
	if code := g.wait(6 * time.Second); code != 0 {
		t.Errorf("gateway exited with %d after SIGTERM, want 0", code)
	}
	if _, err := http.Get("http://" + g.addr + "/hello"); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("gateway still answers after exit")
	}
}
