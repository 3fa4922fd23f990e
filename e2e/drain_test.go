package e2e

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestDrain: draining the active server keeps its in-flight requests alive,
// sends new ones to the failover, closes its websockets with 1012 after the
// grace period; undrain (with auto failback) brings traffic back.
func TestDrain(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	g := startGateway(t, gwConfig(master, backup)+healthCfg+
		"    websocket: {paths: [/websocket], requireUpgrade: true, drainGrace: 1s}\n    failback: {policy: auto}\n")
	ws := dialAll(t, g.addr, 3)

	var wg sync.WaitGroup
	var slow result
	wg.Go(func() {
		slow = result{start: time.Now()}
		resp, err := http.Get("http://" + g.addr + "/slow?ms=1500")
		if err != nil {
			slow.err = err
			return
		}
		resp.Body.Close()
		slow.status, slow.server = resp.StatusCode, resp.Header.Get("X-Served-By")
	})
	time.Sleep(200 * time.Millisecond)
	drainAt := time.Now()
	if out, code := g.cli("drain", "app", "master"); code != 0 {
		t.Fatalf("tandem drain: exit %d: %s", code, out)
	}
	if s := get(http.DefaultClient, "http://"+g.addr+"/hello").server; s != "failover" {
		t.Errorf("new request after drain served by %q, want the failover", s)
	}
	wg.Wait()
	if slow.err != nil || slow.status != 200 || slow.server != "master" {
		t.Errorf("in-flight request across the drain: %d from %q err %v; want 200 from the master", slow.status, slow.server, slow.err)
	}
	for i, w := range ws {
		select {
		case <-w.done:
			if d := w.closedAt.Sub(drainAt); d < 900*time.Millisecond {
				t.Errorf("websocket %d closed %v after the drain, before the 1s grace", i, d)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("websocket %d still open 3s after the drain", i)
		}
		if w.code != websocket.StatusServiceRestart {
			t.Errorf("websocket %d closed with %d, want 1012", i, w.code)
		}
	}
	// Repeating it is a success that did nothing (runbooks run under set -e).
	if out, code := g.cli("drain", "app", "master"); code != 0 || !strings.Contains(out, "nothing to do: master is already drained") {
		t.Errorf("second drain: exit %d %q, want exit 0 saying there was nothing to do", code, out)
	}
	out, _ := g.cli("status", "-o", "json")
	if !strings.Contains(out, `"drained": true`) {
		t.Errorf("status does not show the drained server:\n%s", out)
	}
	if out, code := g.cli("undrain", "app", "master"); code != 0 {
		t.Fatalf("tandem undrain: exit %d: %s", code, out)
	}
	if s := get(http.DefaultClient, "http://"+g.addr+"/hello").server; s != "master" {
		t.Errorf("after undrain served by %q, want the master (failback auto)", s)
	}
	out, code := g.cli("history", "app")
	if code != 0 || !strings.Contains(out, "master was drained") || !strings.Contains(out, "undrain by") {
		t.Errorf("tandem history: exit %d:\n%s", code, out)
	}
}
