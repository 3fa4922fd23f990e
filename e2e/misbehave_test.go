package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// fakeMasterGateway starts a gateway whose master is the test's own
// server at addr and whose failover is a demo app, with the usual checks
// and the extra group keys, and waits for the master to be active.
func fakeMasterGateway(t *testing.T, addr, extra string, replace ...string) *gw {
	t.Helper()
	master := &app{addr: addr, proc: &proc{name: "app master"}}
	cfg := gwConfig(master, startApp(t, "failover", ""))
	if len(replace) == 2 {
		cfg = strings.Replace(cfg, replace[0], replace[1], 1)
	}
	g := startGateway(t, cfg+healthCfg+extra)
	g.waitActive(t, "master", 5*time.Second)
	return g
}

// checkedServer is a server of the test's own on loopback that passes
// its health checks and answers every other request with h.
func checkedServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/status" {
			fmt.Fprintln(w, `{"version": "1"}`)
			return
		}
		h(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// muteServer answers its health check and nothing else: every other
// request is read and left waiting until its client goes.
func muteServer(t *testing.T) string {
	return checkedServer(t, func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
}

// TestNoProgress: a master that accepts requests and answers none while
// its checks pass is marked down once requests waited passive.noProgress
// with no response head from it; the waiting GETs move to the failover.
// A legitimately slow endpoint does not trip it while other requests are
// answered.
func TestNoProgress(t *testing.T) {
	t.Run("mute master", func(t *testing.T) {
		g := fakeMasterGateway(t, muteServer(t), "    failback: {policy: manual}\n    passive: {noProgress: 2s}\n    timeouts: {response: 30s}\n")
		start := time.Now()
		l := runLoad(10, 15*time.Second, func(c *http.Client) result { return get(c, "http://"+g.addr+"/hello") })
		at := waitSwitchWithin(t, g, "failover", 6*time.Second)
		time.Sleep(time.Second)
		rs := l.finish()
		if f := failures(rs); len(f) > 0 {
			t.Errorf("%d of %d GETs failed:\n%s", len(f), len(rs), describeFailures(f))
		}
		if d := at.Sub(start); d < 2*time.Second || d > 3500*time.Millisecond {
			t.Errorf("switched %v after the load began, want after noProgress (2s) and within 3.5s", d)
		}
		for _, r := range rs {
			if d := r.end.Sub(r.start); d > 3500*time.Millisecond {
				t.Errorf("a GET took %v, want it moved to the failover when the master was marked down", d)
				break
			}
		}
		if !strings.Contains(g.out.String(), "no response head for") {
			t.Error("the gateway log does not say why the master went down")
		}
		t.Logf("%d GETs, 0 failed; switched %v after the load began", len(rs), at.Sub(start).Round(time.Millisecond))
	})

	t.Run("slow endpoint while others are answered", func(t *testing.T) {
		master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
		g := startGateway(t, gwConfig(master, backup)+healthCfg+
			"    failback: {policy: manual}\n    passive: {noProgress: 1s}\n    timeouts: {response: 30s}\n")
		g.waitActive(t, "master", 5*time.Second)
		l := runLoad(2, 10*time.Second, func(c *http.Client) result {
			time.Sleep(100 * time.Millisecond)
			return get(c, "http://"+g.addr+"/hello")
		})
		var wg sync.WaitGroup
		slow := make([]result, 5)
		for i := range slow {
			wg.Go(func() { slow[i] = get(http.DefaultClient, "http://"+g.addr+"/slow?ms=4000") })
		}
		wg.Wait()
		rs := l.finish()
		for _, r := range append(slow, rs...) {
			if r.err != nil || r.status != 200 {
				t.Errorf("a request failed: status %d err %v", r.status, r.err)
			}
		}
		for _, r := range slow {
			if r.server != "" && r.server != "master" {
				t.Errorf("a slow request was answered by %q, want the master", r.server)
			}
		}
		if _, to := lastSwitch(t, g); to != "master" {
			t.Errorf("switched to %q: a slow endpoint tripped no-progress detection", to)
		}
	})
}

// waitSwitchWithin waits until the group's last switch went to server.
func waitSwitchWithin(t *testing.T, g *gw, server string, limit time.Duration) time.Time {
	t.Helper()
	var at time.Time
	if !untilTrue(limit, func() bool { var to string; at, to = lastSwitch(t, g); return to == server }) {
		t.Fatalf("no switch to %s within %v", server, limit)
	}
	return at
}

// rawServer is a server of the test's own on loopback that answers its
// health check and every other request with what answer returns, written
// raw; close ends the connection after it.
func rawServer(t *testing.T, answer func(path string) (raw string, close bool)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if req.URL.Path == "/status" {
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{\"version\": \"1\"}")
						return
					}
					raw, end := answer(req.URL.Path)
					io.WriteString(c, raw)
					if end {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// brokenServer passes its health checks and answers every other request
// with a head that no client may accept (two Content-Lengths).
func brokenServer(t *testing.T) string {
	return rawServer(t, func(string) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello", false
	})
}

// TestEjectionHold: a master whose answers are broken while its checks
// pass is ejected by its traffic and held down, longer at each repeated
// ejection, whatever the failback policy (auto here): a few switches,
// not one every couple of checks; the state says why it is held.
func TestEjectionHold(t *testing.T) {
	g := fakeMasterGateway(t, brokenServer(t), "    failback: {policy: auto}\n    passive: {maxFails: 3, window: 10s, baseEjectionTime: 2s}\n")
	start := time.Now()
	l := runLoad(5, 7*time.Second, func(c *http.Client) result { return get(c, "http://"+g.addr+"/hello") })
	var held ServerView
	untilTrue(3*time.Second, func() bool { held = serverView(t, g, "master"); return held.HeldReason != "" })
	time.Sleep(time.Until(start.Add(7 * time.Second)))
	rs := l.finish()
	if f := failures(rs); len(f) > 0 {
		t.Errorf("%d of %d GETs failed (each is replayable):\n%s", len(f), len(rs), describeFailures(f))
	}
	if !strings.Contains(held.HeldReason, "held down") {
		t.Errorf("the state does not say why the master is held: %+v", held)
	}
	switches := 0
	for _, h := range history(t, g) {
		if h.At.After(start) {
			switches++
		}
	}
	// Ejected at once, held 2s, ejected again at its first requests,
	// held 4s, ejected again: 3 ejections in 7s, 5 switches. Readmitted by
	// its two passing checks, it would be ejected every half second.
	if switches > 6 {
		t.Errorf("%d switches in %v, want at most 6: the ejected master is readmitted too soon", switches, time.Since(start).Round(time.Millisecond))
	}
	if !strings.Contains(g.out.String(), "ejected by its traffic 2 times in a row: held down 4s") {
		t.Error("the log does not show the hold growing at the second ejection")
	}
	t.Logf("%d GETs 0 failed; %d switches in %v; state: %q", len(rs), switches, time.Since(start).Round(time.Millisecond), held.HeldReason)
}

// ServerView is what the admin API says of one server.
type ServerView struct {
	State      string
	HeldReason string
}

// adminJSON decodes the admin API's answer at path into v.
func adminJSON(t *testing.T, g *gw, path string, v any) {
	t.Helper()
	resp, err := http.Get("http://" + g.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func serverView(t *testing.T, g *gw, name string) ServerView {
	t.Helper()
	var st struct {
		Groups []struct {
			Servers []struct{ Name, State, HeldReason string }
		}
	}
	adminJSON(t, g, "/api/v1/state", &st)
	for _, s := range st.Groups[0].Servers {
		if s.Name == name {
			return ServerView{State: s.State, HeldReason: s.HeldReason}
		}
	}
	return ServerView{}
}

type switchView struct {
	At       time.Time
	From, To string
	By       string
}

func history(t *testing.T, g *gw) []switchView {
	t.Helper()
	var h []switchView
	adminJSON(t, g, "/api/v1/groups/app/history", &h)
	return h
}

// TestBodyFailures: a response body the server breaks after its head is
// counted (tandem_requests_total code "cut", the access log's error)
// and counts against the server; a malformed first chunk, with nothing
// sent yet, is answered 502.
func TestBodyFailures(t *testing.T) {
	addr := rawServer(t, func(path string) (string, bool) {
		if path == "/badchunk" {
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", true
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", true
	})
	g := fakeMasterGateway(t, addr, "    failback: {policy: manual}\n    passive: {maxFails: 3, window: 10s}\n",
		"level: debug}", "level: info, access: true}")
	resp, err := http.Get("http://" + g.addr + "/badchunk")
	if err != nil {
		t.Fatalf("malformed first chunk: %v, want a 502", err)
	}
	_, bodyErr := io.ReadAll(resp.Body)
	resp.Body.Close()
	// net/http's Transport does not tell whether a body's first bytes
	// came with its head: a body of unknown length is relayed as it comes,
	// so one that fails at its first chunk reaches the client as a cut
	// (its head, then the abort), not as a 502.
	cuts, gateway5xx := 2.0, 1.0
	if engine == "net/http" {
		cuts, gateway5xx = 3, 0
		if resp.StatusCode != http.StatusOK || bodyErr == nil {
			t.Errorf("malformed first chunk: status %d, body error %v, want 200 and the cut", resp.StatusCode, bodyErr)
		}
	} else if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("malformed first chunk: status %d, want 502", resp.StatusCode)
	}
	for i := range 2 {
		resp, err := http.Get("http://" + g.addr + "/cut")
		if err != nil {
			t.Fatalf("cut body %d: %v", i, err)
		}
		if _, err := io.ReadAll(resp.Body); err == nil {
			t.Errorf("cut body %d read whole: the client must see the cut", i)
		}
		resp.Body.Close()
	}
	m := scrape(t, g)
	if n := m[`tandem_requests_total{code="cut",group="app",server="master"}`]; n != cuts {
		t.Errorf(`tandem_requests_total{code="cut",server="master"} = %v, want %v`, n, cuts)
	}
	if n := m[`tandem_requests_total{code="5xx",group="app",server=""}`]; n != gateway5xx {
		t.Errorf(`tandem_requests_total{code="5xx",server=""} = %v, want %v (the 502)`, n, gateway5xx)
	}
	// Three body failures within the window: the master is ejected.
	if v := serverView(t, g, "master"); v.State != "down" {
		t.Errorf("after 3 broken bodies the master is %q, want down", v.State)
	}
	log := g.out.String()
	for _, want := range []string{`msg=access group=app server=master method=GET`, `error="response body: `, `msg="response body failed"`} {
		if !strings.Contains(log, want) {
			t.Errorf("gateway log lacks %q", want)
		}
	}
}

// stallServer sends a response head and the first bytes of a body at
// once, then stalls until the gateway ends the exchange; active counts
// the exchanges the gateway still holds open.
func stallServer(t *testing.T, active *atomic.Int64) string {
	return checkedServer(t, func(w http.ResponseWriter, r *http.Request) {
		active.Add(1)
		defer active.Add(-1)
		w.Header().Set("Content-Length", "1000000")
		w.Write([]byte("first bytes"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
}

// fds counts the open file descriptors of the gateway process.
func fds(t *testing.T, g *gw) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", g.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("the gateway's fds cannot be counted from /proc (Linux only): %v", err)
	}
	return len(ents)
}

// TestStalledBody: a server sends a response head and then stalls the
// body. Clients that give up end their exchange with the server: no
// goroutine, fd or connection slot stays held; and a client that waits
// has its exchange ended once the body made no progress for
// timeouts.bodyIdle.
func TestStalledBody(t *testing.T) {
	var active atomic.Int64
	g := fakeMasterGateway(t, stallServer(t, &active), "    failback: {policy: manual}\n    timeouts: {bodyIdle: 2s}\n")
	base := fds(t, g)
	const n = 100
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			c := &http.Client{Timeout: 300 * time.Millisecond}
			if resp, err := c.Get("http://" + g.addr + "/stall"); err == nil {
				io.ReadAll(resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	peak := fds(t, g)
	if !untilTrue(time.Second, func() bool { return active.Load() == 0 }) {
		t.Errorf("%d of %d exchanges with the stalled server still open 1s after their clients left", active.Load(), n)
	}
	var now int
	if !untilTrue(time.Second, func() bool { now = fds(t, g); return now <= base+5 }) {
		t.Errorf("gateway fds: %d before, %d with the clients, %d 1s after they left: leaked", base, peak, now)
	}
	// A client that stays: the stalled body ends after bodyIdle.
	start := time.Now()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + g.addr + "/stall")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if d := time.Since(start); err == nil || d < 2*time.Second || d > 3500*time.Millisecond {
		t.Errorf("a stalled body ended after %v with %v, want an error after bodyIdle (2s)", d, err)
	}
	if !untilTrue(time.Second, func() bool { return active.Load() == 0 }) {
		t.Errorf("the exchange is still open after the body idled out")
	}
	t.Logf("fds %d before, %d with %d clients, %d after", base, peak, n, now)
}

// TestFDLimit: the gateway starts with a file descriptor limit (soft and
// hard) below what limits.maxConnections needs. It lowers the effective
// bound and says so, naming the limit, so that client connections wait in
// the backlog rather than exhaust the fds that dials and checks need.
func TestFDLimit(t *testing.T) {
	wrapper := filepath.Join(t.TempDir(), "tandem-ulimit")
	script := "#!/bin/sh\nulimit -n 300 || exit 99\nexec " + bin + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	real := bin
	bin = wrapper
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	g := startGateway(t, gwConfig(master, backup)+healthCfg)
	bin = real
	g.waitActive(t, "master", 5*time.Second)
	log := g.out.String()
	if !strings.Contains(log, "RLIMIT_NOFILE") || !strings.Contains(log, "effectiveMaxConnections=86") {
		t.Fatalf("no warning lowering maxConnections to what 300 fds allow (86):\n%s", log)
	}
	// 86 idle connections hold every slot; the 87th client waits in the
	// backlog, and gets in when one closes.
	var idle []net.Conn
	for range 86 {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
		defer c.Close()
	}
	time.Sleep(200 * time.Millisecond)
	done := make(chan result, 1)
	go func() { done <- get(&http.Client{Timeout: 10 * time.Second}, "http://"+g.addr+"/hello") }()
	select {
	case r := <-done:
		t.Fatalf("an 87th connection was served at once (%d %v): the bound was not lowered", r.status, r.err)
	case <-time.After(500 * time.Millisecond):
	}
	idle[0].Close()
	if r := <-done; r.status != 200 || r.server != "master" {
		t.Errorf("after a slot freed: %d from %q, err %v", r.status, r.server, r.err)
	}
	if strings.Contains(g.out.String(), "too many open files") {
		t.Error("the gateway ran out of file descriptors")
	}
}

// TestNoServerKeepsWebsockets: when the last server is declared down and
// the group switches to no server at all, its websockets stay open:
// closing them would help no one, their clients have nowhere to go.
func TestNoServerKeepsWebsockets(t *testing.T) {
	master := startApp(t, "master", "")
	g := startGateway(t, gwConfig(master)+healthCfg+wsCfg)
	g.waitActive(t, "master", 5*time.Second)
	ws := dialAll(t, g.addr, 3)
	resp, err := http.Post("http://"+master.addr+"/admin/health?ok=false", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitSwitchWithin(t, g, "", 5*time.Second)
	time.Sleep(time.Second)
	for i, w := range ws {
		select {
		case <-w.done:
			t.Errorf("websocket %d closed (code %d) by the switch to no server", i, w.code)
		default:
		}
	}
	if !strings.Contains(g.out.String(), "to=\"\"") {
		t.Error("no switch to no server in the log")
	}
}

// TestRoleLossAbandons: an operator switch takes the active role from a
// master with requests waiting on it: the GET is replayed on the new
// active server, the POST (not replayable) gets a prompt 502, both are
// counted with cause role.
func TestRoleLossAbandons(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	g := startGateway(t, gwConfig(master, backup)+healthCfg+"    failback: {policy: manual}\n")
	g.waitActive(t, "master", 5*time.Second)
	type answer struct {
		status int
		body   string
		at     time.Time
	}
	do := func(method string, out chan<- answer) {
		req, _ := http.NewRequest(method, "http://"+g.addr+"/slow?ms=2000", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- answer{body: err.Error(), at: time.Now()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- answer{status: resp.StatusCode, body: string(b), at: time.Now()}
	}
	getc, postc := make(chan answer, 1), make(chan answer, 1)
	go do("GET", getc)
	go do("POST", postc)
	time.Sleep(500 * time.Millisecond)
	switchAt := time.Now()
	if out, code := g.cli("switch", "app", "failover"); code != 0 {
		t.Fatalf("tandem switch: exit %d: %s", code, out)
	}
	p, gt := <-postc, <-getc
	if p.status != http.StatusBadGateway || p.at.Sub(switchAt) > time.Second {
		t.Errorf("POST waiting on the master: %d %q %v after the switch, want 502 at once", p.status, p.body, p.at.Sub(switchAt))
	}
	if gt.status != 200 || !strings.HasPrefix(gt.body, "failover") {
		t.Errorf("GET waiting on the master: %d %q, want the failover's answer (replayed)", gt.status, gt.body)
	}
	if n := scrape(t, g)[`tandem_requests_abandoned_total{cause="role",group="app",server="master"}`]; n != 2 {
		t.Errorf("abandoned with cause role: %v, want 2", n)
	}
}

// TestIdleWebsocketCost: an idle websocket costs the gateway no goroutine
// at all (both pumps parked on the gateway's epoll set, the handler gone);
// its memory is logged.
func TestIdleWebsocketCost(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	g := startGateway(t, gwConfig(master, backup)+healthCfg+wsCfg+"    failback: {policy: manual}\n")
	idleWebsocketCost(t, g, "ws://"+g.addr+"/websocket", nil)
}

// TestIdleWebsocketCostTLS: the same over HTTPS: the client's side parks
// too (the TLS connection holding no whole record, its socket waits on
// the epoll set), so an idle websocket over TLS costs no goroutine either;
// its memory is logged. The websockets then still carry a message each
// way, parked or not.
func TestIdleWebsocketCostTLS(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	cfg := strings.Replace(gwConfig(master, backup), "{name: http, address: LISTEN}",
		"{name: https, address: LISTEN, tls: {cert: "+certFile+", key: "+keyFile+"}}", 1)
	g := startGateway(t, cfg+healthCfg+wsCfg+"    failback: {policy: manual}\n")
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	idleWebsocketCost(t, g, "wss://"+g.addr+"/websocket", &websocket.DialOptions{HTTPClient: hc})
}

// liveHeap returns the gateway's heap in use after a garbage collection
// (the HeapAlloc of its heap profile, asked with gc=1): what it holds, not
// what it has yet to collect (the garbage of TLS handshakes, say).
func liveHeap(t *testing.T, g *gw) float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.admin + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("heap profile: HeapAlloc %q", v)
			}
			return n
		}
	}
	t.Fatalf("heap profile without HeapAlloc (%d, %v)", resp.StatusCode, sc.Err())
	return 0
}

// idleWebsocketCost opens 300 websockets to url, each greeted, lets them
// idle, and fails t unless they cost the gateway no goroutine; it logs
// their memory (RSS delta / count, and live heap delta / count). Then
// some of them carry a ping and its pong, to show that parking lost
// nothing.
func idleWebsocketCost(t *testing.T, g *gw, url string, opts *websocket.DialOptions) {
	t.Helper()
	g.waitActive(t, "master", 5*time.Second)
	heap0 := liveHeap(t, g)
	before := scrape(t, g)
	const n = 300
	var conns []*websocket.Conn
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, _, err := websocket.Dial(ctx, url, opts)
		if err == nil {
			_, _, err = c.Read(ctx)
		}
		cancel()
		if err != nil {
			t.Fatalf("websocket %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	time.Sleep(500 * time.Millisecond)
	heap1 := liveHeap(t, g)
	after := scrape(t, g)
	per := (after["go_goroutines"] - before["go_goroutines"]) / n
	rss := (after["process_resident_memory_bytes"] - before["process_resident_memory_bytes"]) / n
	t.Logf("per idle websocket: %.2f goroutines, %.1f KiB RSS, %.1f KiB live heap", per, rss/1024, (heap1-heap0)/n/1024)
	if per > 0.05 {
		t.Errorf("%.2f goroutines per idle websocket, want none", per)
	}
	// Parked or not, a websocket still relays both ways: a ping goes
	// through the client's side to the server, its pong back (read by a
	// reader of the client's own, which also takes the server's ticks).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, c := range conns[:20] {
		go func() {
			for ctx.Err() == nil {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		}()
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("websocket %d: no pong after idling: %v", i, err)
		}
	}
}

// TestWeakCheckTimeouts: the master's checks time out while it answers
// live traffic at once: weak evidence, each counts half, so it takes
// twice fall such checks to mark it down (4 with fall 2), not 2.
func TestWeakCheckTimeouts(t *testing.T) {
	var slow atomic.Bool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/status" && slow.Load() {
			time.Sleep(800 * time.Millisecond) // longer than the check timeout
		}
		fmt.Fprintln(w, `hello from master {"version": "1"}`)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	g := fakeMasterGateway(t, ln.Addr().String(), "    failback: {policy: manual}\n")
	l := runLoad(4, 15*time.Second, func(c *http.Client) result {
		time.Sleep(20 * time.Millisecond)
		return get(c, "http://"+g.addr+"/hello")
	})
	slow.Store(true)
	waitSwitchWithin(t, g, "failover", 10*time.Second)
	l.finish()
	log := g.out.String()
	if !strings.Contains(log, "check failed 4 times in a row") || !strings.Contains(log, "timed out while its traffic was answered") {
		t.Errorf("the master went down on fewer than 4 timed-out checks while its traffic was answered:\n%s", grepLines(log, "state changed"))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// TestEndlessHead: a server that sends an endless response head, or
// endless 100-continues, costs a bounded amount: the exchange ends, a POST
// (not replayable) gets a 502 promptly, a GET is replayed on the failover,
// and the server is counted as failing.
func TestEndlessHead(t *testing.T) {
	filler := "X-Filler: " + strings.Repeat("a", 100) + "\r\n"
	addr := checkedServer(t, func(w http.ResponseWriter, r *http.Request) {
		c, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		line := "HTTP/1.1 100 Continue\r\n\r\n"
		if r.URL.Query().Get("endless") == "head" {
			bw.WriteString("HTTP/1.1 200 OK\r\n")
			line = filler
		}
		// Bounded: at most about 100 MB, and it stops when the gateway hangs up.
		for range 1_000_000 {
			if _, err := bw.WriteString(line); err != nil {
				return
			}
		}
		bw.Flush()
	})
	g := fakeMasterGateway(t, addr, "    failback: {policy: manual}\n    passive: {maxFails: 100, window: 10s}\n")
	c := &http.Client{Timeout: 10 * time.Second}
	// The failover's /hello answers the replayed GETs.
	for _, path := range []string{"/hello?endless=head", "/hello?endless=1xx"} {
		start := time.Now()
		resp, err := c.Post("http://"+g.addr+path, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatalf("POST %s: %v, want a 502", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("POST %s: status %d, want 502", path, resp.StatusCode)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("POST %s took %v: the bound did not end it", path, d)
		}
		resp, err = c.Get("http://" + g.addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Served-By") != "failover" {
			t.Errorf("GET %s: status %d from %q, want 200 from the failover (replayed)", path, resp.StatusCode, resp.Header.Get("X-Served-By"))
		}
	}
	log := g.out.String()
	for _, want := range []string{"response head is larger than 1048576 bytes", "more than 5 informational (1xx) responses"} {
		if !strings.Contains(log, want) {
			t.Errorf("gateway log lacks %q", want)
		}
	}
}
