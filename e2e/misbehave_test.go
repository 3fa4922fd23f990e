package e2e

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// post does one POST of body to url, never replayable once sent.
func post(c *http.Client, url string) result {
	r := result{start: time.Now(), method: "POST"}
	resp, err := c.Post(url, "text/plain", strings.NewReader("payload"))
	r.end, r.err = time.Now(), err
	if err == nil {
		r.status = resp.StatusCode
		resp.Body.Close()
	}
	return r
}

// TestFrozenMasterParked: the master is frozen (SIGSTOP) under GET and
// POST load with its checks the only detector (no per-try timeout). When
// the checks mark it down, the requests waiting on it are abandoned at
// once: the GETs are replayed on the failover, the POSTs (not replayable)
// get a prompt 502; none waits for the master to wake. Its websockets get
// 1012 at the switch, and websockets opened during the freeze all connect.
func TestFrozenMasterParked(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	g := startGateway(t, gwConfig(master, backup)+healthCfg+wsCfg+
		"    failback: {policy: manual}\n    passive: {noProgress: 0}\n    timeouts: {response: 30s}\n")
	g.waitActive(t, "master", 5*time.Second)
	ws := dialAll(t, g.addr, 5)
	gets := runLoad(20, 25*time.Second, func(c *http.Client) result { return get(c, "http://"+g.addr+"/hello") })
	posts := runLoad(5, 25*time.Second, func(c *http.Client) result { return post(c, "http://"+g.addr+"/echo") })
	time.Sleep(time.Second)

	// New websockets while the master is frozen: each must connect.
	var wsMu sync.Mutex
	var wsFailed []string
	wsStop := make(chan struct{})
	var wsWG sync.WaitGroup
	wsWG.Go(func() {
		for i := 0; i < 60; i++ {
			select {
			case <-wsStop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			wsWG.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, _, err := websocket.Dial(ctx, "ws://"+g.addr+"/websocket", nil)
				if err == nil {
					_, _, err = c.Read(ctx)
					c.CloseNow()
				}
				if err != nil && websocket.CloseStatus(err) != websocket.StatusServiceRestart {
					wsMu.Lock()
					wsFailed = append(wsFailed, err.Error())
					wsMu.Unlock()
				}
			})
		}
	})

	master.signal(syscall.SIGSTOP)
	at := waitSwitch(t, g, "failover")
	time.Sleep(4 * time.Second)
	contAt := time.Now()
	master.signal(syscall.SIGCONT)
	close(wsStop)
	wsWG.Wait()
	rs, ps := gets.finish(), posts.finish()

	if f := failures(rs); len(f) > 0 {
		t.Errorf("%d of %d GETs failed across the freeze:\n%s", len(f), len(rs), describeFailures(f))
	}
	parked := 0
	for _, r := range append(rs, ps...) {
		if r.start.Before(at) && r.end.After(contAt) {
			parked++
		}
	}
	if parked > 0 {
		t.Errorf("%d requests waited on the frozen master until it woke", parked)
	}
	var bad []result
	for _, p := range failures(ps) {
		if p.status != http.StatusBadGateway || p.end.Sub(at) > time.Second {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Errorf("POSTs in flight to the frozen master should get 502 within 1s of the switch at %s:\n%s",
			at.Format("15:04:05.000"), describeFailures(bad))
	}
	expectClosed(t, ws, websocket.StatusServiceRestart, at, 200*time.Millisecond)
	if len(wsFailed) > 0 {
		t.Errorf("%d websockets opened during the freeze failed: %v", len(wsFailed), wsFailed)
	}
	m := scrape(t, g)
	n := m[`tandem_requests_abandoned_total{cause="down",group="app",server="master"}`]
	if n < 1 {
		t.Errorf("tandem_requests_abandoned_total for the master is %v, want the parked requests counted", n)
	}
	if !strings.Contains(g.out.String(), "requests waiting on the server abandoned") {
		t.Error("no log line for the abandoned requests")
	}
	t.Logf("%d GETs, %d POSTs (%d got 502); %v requests abandoned at the switch", len(rs), len(ps), len(failures(ps)), n)
}
