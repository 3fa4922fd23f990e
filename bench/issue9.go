package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The issue 9 scenarios of items 4 to 9: each runs the same fault against
// tandem and HAProxy and reads figures rather than a GET timeline.
const (
	scCut   = "cut"   // item 4
	scStall = "stall" // item 5
	scFDs   = "fds"   // item 6
	scStorm = "storm" // item 7
	scDNS   = "dns"   // item 8
	scIdle  = "idle"  // item 9
)

var i9Scenarios = []string{scCut, scStall, scFDs, scStorm, scDNS, scIdle}

// i9Opts are the knobs of the issue 9 scenarios.
type i9Opts struct {
	// WS is how many websockets the fds, idle and storm scenarios open
	// (the 10,000; the storm's 9,900); -quick shrinks it.
	WS     int
	Repeat int // runs of each scenario behind each proxy; medians reported
	// StormPerTry is tandem's retry.perTryTimeout in the storm (0: none,
	// its default), to show what a per-try timeout does to the handshakes.
	StormPerTry time.Duration
	// Proxies are those to run behind (both unless -proxies says less).
	Proxies []proxyKind
}

// figure is one measured value of a run; Val NaN when it is only Text.
type figure struct {
	Label string
	Val   float64
	Fmt   string // Printf format of Val
	Text  string // beside the value (or instead of it)
}

func num(label, format string, v float64, text ...string) figure {
	return figure{Label: label, Val: v, Fmt: format, Text: strings.Join(text, " ")}
}

func txt(label, text string) figure { return figure{Label: label, Val: math.NaN(), Text: text} }

// i9Result is one run of one scenario behind one proxy.
type i9Result struct {
	Scenario string
	Proxy    proxyKind
	Figs     []figure
}

// i9Def describes a scenario for RESULTS.md and runs it once.
type i9Def struct {
	Item  string
	Title string
	Setup string
	Run   func(ctx context.Context, e *env, kind proxyKind, o i9Opts) ([]figure, error)
}

func i9Scenario(name string, o i9Opts) *i9Def {
	switch name {
	case scCut:
		return &i9Def{Item: "4", Title: "failures after the response head",
			Setup: "Two helper backends (the bench's own binary): the master answers /cut with Content-Length 100000 " +
				"and closes after 10000 bytes, /midchunk with a good 10000-byte chunk then a malformed one, " +
				"/badchunk with a malformed first chunk (nothing sent yet); the backup answers them whole. " +
				"4 rounds of the three, each on a new connection, twice on fresh proxies: first with no passive " +
				"ejection (tandem passive.maxFails 1000; HAProxy no observe), so that every try reaches the master " +
				"(what the client sees, what is counted and logged: tandem access log on, HAProxy option httplog " +
				"to stderr); then with ejection on (tandem's passive defaults: maxFails 3 in 10s, ejection 5s; " +
				"HAProxy observe layer7 error-limit 3 on-error mark-down) for the last two rows.",
			Run: runCut}
	case scStall:
		return &i9Def{Item: "5", Title: "stalled response bodies, clients giving up",
			Setup: "Two groups on the listener: `bench` (helper backends whose /stall sends a head, " +
				"Content-Length 1000000, 11 bytes, then nothing) and `other` (Host other.test, a healthy " +
				"helper). limits.maxConnections 100 (HAProxy maxconn 100). 200 clients GET /stall at once " +
				"and give up after 500ms; then the fds and exchanges still held, and 20 GETs to the other group.",
			Run: runStall}
	case scFDs:
		return &i9Def{Item: "6", Title: fmt.Sprintf("own file descriptors short: %d websockets, RLIMIT_NOFILE %d", o.WS, 2*o.WS),
			Setup: fmt.Sprintf("The proxy runs with RLIMIT_NOFILE %d (soft and hard, prlimit) and without CAP_SYS_RESOURCE "+
				"(setpriv), so it cannot raise it; maxConnections (HAProxy maxconn) %d, which needs about %d fds. "+
				"Idle helper backends. %d websockets are opened (50 dialers, 5s each), then held 10s while one "+
				"kept-alive client GETs /hello every 100ms. The issue's case: 20,000 fds, 10,000 websockets.",
				2*o.WS, o.WS, 2*o.WS+128, o.WS),
			Run: runFDs}
	case scStorm:
		return &i9Def{Item: "7", Title: fmt.Sprintf("reconnect storm: %d websockets, master SIGKILL", stormN(o)),
			Setup: stormSetup(o), Run: runStorm}
	case scDNS:
		return &i9Def{Item: "8", Title: "a server named by host name whose address changes",
			Setup: "The master is `master.bench.test:PORT`, answered by the bench's own DNS server on " + dnsAddr +
				" (TTL 1s), which both proxies reach through a resolv.conf bind-mounted in a mount namespace of " +
				"their own (HAProxy: resolvers with parse-resolv-conf, timeout resolve 1s). First 127.0.0.1, where " +
				"helper `bench-master` listens; 3s into 20 keep-alive GET clients, 127.0.0.2, where helper " +
				"`bench-moved` listens on the same port. Both stay up: what moves traffic is the name alone.",
			Run: runDNS}
	case scIdle:
		n := wsCap(o.WS)
		capped := ""
		if n < o.WS {
			capped = fmt.Sprintf(" (%d asked: the hard fd limit here is %d and cannot be raised, so that a proxy can hold "+
				"%d websockets at most, two fds each)", o.WS, fdHard(), n)
		}
		return &i9Def{Item: "9", Title: fmt.Sprintf("memory of %d idle websockets", n),
			Setup: fmt.Sprintf("Helper backends whose websockets greet and then say nothing. RLIMIT_NOFILE of the "+
				"proxy %d (prlimit); tandem's default maxConnections (10000, lowered to what the fd limit allows), "+
				"HAProxy maxconn %d. %d websockets%s opened (50 dialers), all greeted, 3s to settle; RSS (VmRSS) "+
				"before and after.", wsNoFile(n), n+20, n, capped),
			Run: runIdle}
	}
	return nil
}

// i9Backends starts the helper master and backup on free loopback ports.
func (e *env) i9Backends(ctx context.Context, tick time.Duration, goodBackup bool) (m, b *proc, ma, ba string, err error) {
	if ma, err = freeAddr(); err != nil {
		return
	}
	if ba, err = freeAddr(); err != nil {
		return
	}
	if m, err = e.startHelper(ctx, masterName, ma, tick, false); err != nil {
		return
	}
	if b, err = e.startHelper(ctx, backupName, ba, tick, goodBackup); err != nil {
		m.kill()
	}
	return
}

// wsSetup is the setup for n websockets: RLIMIT_NOFILE to spare, tandem's
// default maxConnections (it lowers them to what the limit allows),
// HAProxy's maxconn just above n.
func wsSetup(kind proxyKind, n int, ma, ba string) i9Setup {
	s := i9Setup{Groups: []i9Group{benchGroup(ma, ba)}, Websocket: true, NoFile: wsNoFile(n)}
	if kind == kindHAProxy {
		s.MaxConn = n + 20
	}
	return s
}

func benchGroup(ma, ba string) i9Group {
	return i9Group{Name: "bench", Servers: []i9Server{{masterName, ma}, {backupName, ba}}}
}

// rawGet does one GET on a new connection and says what the client saw:
// the status, and how much of the body came, or that no answer came.
func rawGet(addr, path, host string, timeout time.Duration) string {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "dial " + errorKind(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
	br := bufio.NewReader(c)
	if _, err := br.Peek(1); err != nil {
		return "no answer (" + errorKind(err) + ")"
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "bad head"
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return fmt.Sprintf("%d, body cut at %d B (%s)", resp.StatusCode, n, errorKind(err))
	case resp.StatusCode != 200:
		return fmt.Sprint(resp.StatusCode)
	}
	return fmt.Sprintf("%d, whole %d B", resp.StatusCode, n)
}

// runCut: item 4, in two parts on fresh proxies: first with no passive
// ejection, so that every try reaches the misbehaving master (what the
// client sees, what is counted and logged); then with each proxy's
// ejection on, to see whether the failures count against the server.
func runCut(ctx context.Context, e *env, kind proxyKind, o i9Opts) ([]figure, error) {
	m, b, ma, ba, err := e.i9Backends(ctx, 0, true)
	if err != nil {
		return nil, err
	}
	defer b.kill()
	defer m.kill()
	paths := []string{"/badchunk", "/cut", "/midchunk"}
	var figs []figure
	for _, eject := range []bool{false, true} {
		s := i9Setup{Groups: []i9Group{benchGroup(ma, ba)}, Access: true, Passive: "{maxFails: 1000, window: 10s}"}
		if eject {
			s.Passive, s.HAExtra = "", "observe layer7 error-limit 3 on-error mark-down"
		}
		g, err := e.startI9Proxy(ctx, kind, s, masterName)
		if err != nil {
			return nil, err
		}
		off := e.logSize(g)
		switches := e.watchSwitches(ctx, g, time.Now())
		addr := strings.TrimPrefix(g.url, "http://")
		seen := map[string]map[string]int{}
		for _, p := range paths {
			seen[p] = map[string]int{}
		}
		for range 4 {
			for _, p := range paths {
				seen[p][rawGet(addr, p, "bench.test", 5*time.Second)]++
			}
		}
		time.Sleep(500 * time.Millisecond) // the last log lines
		log := e.logSince(g, off)
		recs, err := switches()
		if err != nil {
			g.kill()
			return nil, err
		}
		if eject {
			dn, dwhy := downs(kind, log)
			figs = append(figs, num("with ejection on: servers marked down", "%.0f", float64(dn), dwhy), switchFig(recs))
			g.kill()
			break
		}
		for _, p := range paths {
			figs = append(figs, txt("client sees "+p+" (4 tries)", summarize(seen[p])))
		}
		if kind == kindTandem {
			page, err := scrape(ctx, g.admin+"/metrics")
			if err != nil {
				g.kill()
				return nil, err
			}
			figs = append(figs, txt("counted in metrics", metricLines(page, "tandem_requests_total")))
			access, withErr := 0, 0
			for line := range strings.Lines(log) {
				if strings.Contains(line, "msg=access") {
					access++
					if strings.Contains(line, "error=") {
						withErr++
					}
				}
			}
			figs = append(figs, txt("access log", fmt.Sprintf("%d lines, %d with an error", access, withErr)),
				num("warnings \"response body failed\"", "%.0f", float64(strings.Count(log, `msg="response body failed"`))))
		} else {
			figs = append(figs, txt("counted in show stat (master)", haproxyStat(g.sock, "bench", masterName,
				"eresp", "srv_abrt", "hrsp_2xx", "hrsp_5xx")),
				txt("log lines: path, status, termination state", haproxyTermStates(log)))
		}
		g.kill()
	}
	return figs, nil
}

func switchFig(recs []switchRec) figure {
	var parts []string
	for _, r := range recs {
		parts = append(parts, shortName(r.From)+"→"+shortName(r.To))
	}
	return num("switches", "%.0f", float64(len(recs)), strings.Join(parts, " "))
}

// watchSwitches starts reading the proxy's switches from t0 on; the
// function it returns stops and reads them: tandem's history, or
// HAProxy's UP and DOWN lines (haproxyWatch).
func (e *env) watchSwitches(ctx context.Context, g *gateway, t0 time.Time) func() ([]switchRec, error) {
	if g.kind == kindTandem {
		return func() ([]switchRec, error) { return tandemSwitches(ctx, e, g, t0) }
	}
	w := &haproxyWatch{sock: g.sock, log: filepath.Join(e.dir, g.name+".log"), t0: t0}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { w.run(wctx) })
	return func() ([]switchRec, error) {
		stop()
		wg.Wait()
		return w.switches()
	}
}

// haproxyStat reads the named columns of `show stat` for proxy/server.
func haproxyStat(sock, px, sv string, cols ...string) string {
	out, err := haproxyCommand(sock, "show stat")
	if err != nil {
		return err.Error()
	}
	var names []string
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if h, ok := strings.CutPrefix(line, "# "); ok {
			names = strings.Split(h, ",")
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 2 || f[0] != px || f[1] != sv {
			continue
		}
		var parts []string
		for _, want := range cols {
			for i, c := range names {
				if c == want && i < len(f) {
					parts = append(parts, want+" "+f[i])
				}
			}
		}
		return strings.Join(parts, ", ")
	}
	return "no row"
}

// haproxyLogRE reads status, bytes and termination state from an httplog line.
var haproxyLogRE = regexp.MustCompile(` (\S+)/(\S+) \S+ (-?\d+) (\d+) \S+ \S+ (\S{4}) .*"GET (\S+)`)

// haproxyTermStates summarises HAProxy's log lines: "path status flags×n".
func haproxyTermStates(log string) string {
	m := map[string]int{}
	for line := range strings.Lines(log) {
		if g := haproxyLogRE.FindStringSubmatch(line); g != nil {
			m[g[6]+" "+g[3]+" "+g[5]]++
		}
	}
	if len(m) == 0 {
		return "none read"
	}
	return summarize(m)
}

// runStall: item 5.
func runStall(ctx context.Context, e *env, kind proxyKind, o i9Opts) ([]figure, error) {
	m, b, ma, ba, err := e.i9Backends(ctx, 0, false)
	if err != nil {
		return nil, err
	}
	defer b.kill()
	defer m.kill()
	oa, err := freeAddr()
	if err != nil {
		return nil, err
	}
	other, err := e.startHelper(ctx, "bench-other", oa, 0, false)
	if err != nil {
		return nil, err
	}
	defer other.kill()
	s := i9Setup{MaxConn: 100, Groups: []i9Group{benchGroup(ma, ba),
		{Name: "other", Hosts: []string{"other.test"}, Servers: []i9Server{{"bench-other", oa}}}}}
	g, err := e.startI9Proxy(ctx, kind, s, masterName)
	if err != nil {
		return nil, err
	}
	defer g.kill()
	pid := g.cmd.Process.Pid
	addr := strings.TrimPrefix(g.url, "http://")
	time.Sleep(time.Second)
	fdsBefore := procFDs(pid)
	gorBefore := goroutines(ctx, g)
	var peak atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			if n := int64(procFDs(pid)); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	const clients = 200
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() { rawGet(addr, "/stall", "bench.test", 500*time.Millisecond) })
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	time.Sleep(time.Second)
	fds1, held1 := procFDs(pid), stalled(ctx, ma, ba)
	reach := func() (int, time.Duration) {
		ok, worst := 0, time.Duration(0)
		for range 20 {
			t := time.Now()
			if strings.HasPrefix(rawGet(addr, "/hello", "other.test", 2*time.Second), "200") {
				ok++
			}
			worst = max(worst, time.Since(t))
		}
		return ok, worst
	}
	ok1, worst1 := reach()
	time.Sleep(8 * time.Second)
	fds10, held10 := procFDs(pid), stalled(ctx, ma, ba)
	figs := []figure{
		num("proxy fds before", "%.0f", float64(fdsBefore)),
		num(fmt.Sprintf("proxy fds at peak (%d clients)", clients), "%.0f", float64(peak.Load())),
		num("proxy fds 1s after the clients gave up", "%.0f", float64(fds1)),
		num("proxy fds 10s after", "%.0f", float64(fds10)),
		num("exchanges the servers still hold, 1s after", "%.0f", float64(held1)),
		num("exchanges the servers still hold, 10s after", "%.0f", float64(held10)),
		num("other group: GETs answered 200, of 20 (1s after)", "%.0f", float64(ok1)),
		num("other group: slowest of those GETs", "%.3fs", worst1.Seconds()),
	}
	if kind == kindTandem {
		figs = append(figs, txt("goroutines before → 10s after", fmt.Sprintf("%d → %d", gorBefore, goroutines(ctx, g))))
	}
	return figs, nil
}

// stalled is how many /stall exchanges the two helpers still hold.
func stalled(ctx context.Context, addrs ...string) int {
	n := 0
	for _, a := range addrs {
		if st, err := helperStatsOf(ctx, a); err == nil {
			n += int(st.Stalled)
		}
	}
	return n
}

// goroutines reads go_goroutines of a tandem gateway, or -1.
func goroutines(ctx context.Context, g *gateway) int64 {
	if g.admin == "" {
		return -1
	}
	page, err := scrape(ctx, g.admin+"/metrics")
	if err != nil {
		return -1
	}
	return metricValue(page, "go_goroutines")
}

// downs counts the proxy's "server went down" events in its log.
func downs(kind proxyKind, log string) (int, string) {
	m := map[string]int{}
	evs := downEvents(kind, log)
	for _, d := range evs {
		m[shortName(d.server)]++
	}
	return len(evs), summarize(m)
}

// downEvent is a server going down, as the proxy logged it.
type downEvent struct{ server, why string }

// downEvents reads the proxy's log: tandem's "server state changed ...
// to=down reason=...", HAProxy's "Server bench/NAME is DOWN, reason: ...".
// why is the kind of evidence: "passive: ..." or the check's failure.
func downEvents(kind proxyKind, log string) []downEvent {
	var out []downEvent
	for line := range strings.Lines(log) {
		switch {
		case kind == kindTandem && strings.Contains(line, "server state changed") && strings.Contains(line, "to=down"):
			_, rest, _ := strings.Cut(line, " server=")
			name, _, _ := strings.Cut(rest, " ")
			_, why, _ := strings.Cut(line, "reason=")
			why = strings.Trim(strings.TrimSpace(why), `"`)
			if p, _, ok := strings.Cut(why, " ("); ok {
				why = p
			}
			out = append(out, downEvent{name, why})
		case kind == kindHAProxy && strings.Contains(line, " is DOWN"):
			if name, up, ok := serverEvent(line); ok && !up {
				_, why, _ := strings.Cut(line, "reason: ")
				why, _, _ = strings.Cut(why, ",")
				out = append(out, downEvent{name, strings.TrimSpace(why)})
			}
		}
	}
	return out
}

// runFDs: item 6.
func runFDs(ctx context.Context, e *env, kind proxyKind, o i9Opts) ([]figure, error) {
	m, b, ma, ba, err := e.i9Backends(ctx, 0, false)
	if err != nil {
		return nil, err
	}
	defer b.kill()
	defer m.kill()
	s := i9Setup{Groups: []i9Group{benchGroup(ma, ba)}, Websocket: true, MaxConn: o.WS, NoFile: uint64(2 * o.WS), Capped: true}
	var figs []figure
	off := e.logSizeOf(map[proxyKind]string{kindTandem: "tandem-i9", kindHAProxy: "haproxy-i9"}[kind])
	g, err := e.startI9Proxy(ctx, kind, s, masterName)
	if err != nil && kind == kindHAProxy && strings.Contains(err.Error(), "Cannot raise FD limit") {
		// HAProxy's strict-limits (the default since 2.3): it refuses to
		// start. Said so, and then run as told to go on regardless.
		alert := err.Error()
		if i := strings.Index(alert, "Cannot raise FD limit"); i >= 0 {
			alert, _, _ = strings.Cut(alert[i:], "\n")
		}
		figs = append(figs, txt("starts with its defaults", "no: "+alert+" (strict-limits); what follows is with no strict-limits"))
		s.HAGlobal = "no strict-limits"
		off = e.logSizeOf("haproxy-i9")
		g, err = e.startI9Proxy(ctx, kind, s, masterName)
	} else if err == nil {
		figs = append(figs, txt("starts with its defaults", "yes"))
	}
	if err != nil {
		return nil, err
	}
	defer g.kill()
	t0 := time.Now()
	switches := e.watchSwitches(ctx, g, t0)
	addr := strings.TrimPrefix(g.url, "http://")
	// One client with its connection made before the websockets.
	var gets, getFails atomic.Int64
	why := map[string]int{}
	var whyMu sync.Mutex
	lctx, stopLoad := context.WithCancel(ctx)
	var load sync.WaitGroup
	load.Go(func() {
		c, err := newRawClient(lctx, g.url+"/hello", 5*time.Second)
		if err != nil {
			return
		}
		defer c.close()
		for range 10_000 {
			if lctx.Err() != nil {
				return
			}
			s := c.get(lctx)
			if s.outcome == outCut {
				return
			}
			gets.Add(1)
			if s.failed() {
				getFails.Add(1)
				whyMu.Lock()
				why[failureKind(s)]++
				whyMu.Unlock()
			}
			sleepUntil(lctx, time.Now().Add(100*time.Millisecond))
		}
	})
	f := openFleet(ctx, "ws://"+addr+"/websocket", o.WS, 50, 5*time.Second, time.Now().Add(60*time.Second))
	opened := f.opened.Load()
	sleepUntil(ctx, time.Now().Add(10*time.Second))
	openEnd := f.open.Load()
	stopLoad()
	load.Wait()
	closedN, closedWhy := f.closed()
	held := e.logSince(g, off)
	closeAt := time.Since(t0)
	// Then every websocket closes at once, as when a fleet of browsers
	// goes: the proxy's checks must not blame the servers for that either.
	f.close()
	sleepUntil(ctx, time.Now().Add(5*time.Second))
	failedN, failedWhy := f.failedDials()
	log := e.logSince(g, off)
	recs, err := switches()
	if err != nil {
		return nil, err
	}
	var during, after []switchRec
	for _, r := range recs {
		if r.At < closeAt {
			during = append(during, r)
		} else {
			after = append(after, r)
		}
	}
	dn, dwhy := downs(kind, held)
	an, awhy := downs(kind, strings.TrimPrefix(log, held))
	figs = append(figs, []figure{
		txt("fd limit of the proxy (soft/hard)", fdLimit(g.cmd.Process.Pid)),
		num("websockets opened", "%.0f", float64(opened)),
		num("failed to open", "%.0f", float64(failedN), failedWhy),
		num("closed by the proxy while held (10s)", "%.0f", float64(closedN), closedWhy),
		num("open at the end", "%.0f", float64(openEnd)),
		num("servers marked down (opening, holding)", "%.0f", float64(dn), dwhy),
	}...)
	sw := switchFig(during)
	sw.Label = "switches (opening, holding)"
	aw := switchFig(after)
	aw.Label = "switches when they all closed at once (5s)"
	figs = append(figs, sw, num("servers marked down when they all closed at once (5s)", "%.0f", float64(an), awhy), aw)
	whyMu.Lock()
	figs = append(figs, num("GET /hello on a kept-alive connection: failed", "%.0f", float64(getFails.Load()),
		fmt.Sprintf("of %d", gets.Load()), summarize(why)))
	whyMu.Unlock()
	figs = append(figs, txt("what the proxy said", fdWords(kind, log)))
	return figs, nil
}

// fdWords picks what the proxy logged about its fd limit and shortages.
func fdWords(kind proxyKind, log string) string {
	m := map[string]int{}
	for line := range strings.Lines(log) {
		l := strings.ToLower(line)
		switch {
		case strings.Contains(l, "rlimit_nofile") || strings.Contains(l, "fd limit") || strings.Contains(l, "ulimit"):
		case strings.Contains(l, "too many open files"):
		case strings.Contains(l, "short of its own resources"):
		case strings.Contains(l, "maxconn") || strings.Contains(l, "maxsock"):
		default:
			continue
		}
		msg := strings.TrimSpace(line)
		if _, rest, ok := strings.Cut(msg, "msg="); ok {
			msg = rest
		}
		if len(msg) > 160 {
			msg = msg[:160] + "..."
		}
		m[msg]++
	}
	if len(m) == 0 {
		return "nothing"
	}
	return summarize(m)
}

// runDNS: item 8.
func runDNS(ctx context.Context, e *env, kind proxyKind, o i9Opts) ([]figure, error) {
	port, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, p, _ := net.SplitHostPort(port)
	oldAddr, newAddr := "127.0.0.1:"+p, "127.0.0.2:"+p
	const moved = "bench-moved"
	mo, err := e.startHelper(ctx, masterName, oldAddr, 0, false)
	if err != nil {
		return nil, err
	}
	defer mo.kill()
	mn, err := e.startHelper(ctx, moved, newAddr, 0, false)
	if err != nil {
		return nil, err
	}
	defer mn.kill()
	ba, err := freeAddr()
	if err != nil {
		return nil, err
	}
	b, err := e.startHelper(ctx, backupName, ba, 0, false)
	if err != nil {
		return nil, err
	}
	defer b.kill()
	d, err := startDNS("master.bench.test", netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		return nil, err
	}
	defer d.close()
	rc, err := d.resolvConf(e.dir)
	if err != nil {
		return nil, err
	}
	s := i9Setup{Groups: []i9Group{benchGroup("master.bench.test:"+p, ba)}, ResolvConf: rc}
	g, err := e.startI9Proxy(ctx, kind, s, masterName)
	if err != nil {
		return nil, err
	}
	defer g.kill()
	st0, _ := helperStatsOf(ctx, newAddr)
	t0 := time.Now()
	const change = 3 * time.Second
	var changedAt time.Duration
	var wg sync.WaitGroup
	wg.Go(func() {
		if sleepUntil(ctx, t0.Add(change)) {
			d.set(netip.MustParseAddr("127.0.0.2"))
			changedAt = time.Since(t0)
		}
	})
	samples := runLoad(ctx, loadSpec{URL: g.url + "/hello", Clients: 20, Duration: 20 * time.Second,
		Timeout: 5 * time.Second, MaxPer: 1 << 20, Grace: time.Second}, t0)
	wg.Wait()
	first, last := time.Duration(-1), time.Duration(-1)
	oldAfter, failed, total := 0, 0, 0
	for _, sm := range samples {
		if sm.outcome == outCut {
			continue
		}
		total++
		if sm.failed() {
			failed++
			continue
		}
		switch {
		case sm.server == moved && first < 0:
			first = sm.end - changedAt
		case sm.server == masterName && sm.start >= changedAt:
			oldAfter++
			last = sm.end - changedAt
		}
	}
	st1, _ := helperStatsOf(ctx, newAddr)
	figs := []figure{
		num("requests", "%.0f", float64(total)),
		num("failed", "%.0f", float64(failed)),
		num("change → first answer from the new address", "%.2fs", secOrNaN(first)),
		num("change → last answer from the old address", "%.2fs", secOrNaN(last)),
		num("answers from the old address after the change", "%.0f", float64(oldAfter)),
		num("checks (GET /status) that reached the new address", "%.0f", float64(st1.Status-st0.Status)),
		num("DNS queries the bench's server answered", "%.0f", float64(d.queries.Load())),
	}
	return figs, nil
}

// secOrNaN is d in seconds, NaN when negative (never happened).
func secOrNaN(d time.Duration) float64 {
	if d < 0 {
		return math.NaN()
	}
	return d.Seconds()
}

// runIdle: item 9.
func runIdle(ctx context.Context, e *env, kind proxyKind, o i9Opts) ([]figure, error) {
	m, b, ma, ba, err := e.i9Backends(ctx, 0, false)
	if err != nil {
		return nil, err
	}
	defer b.kill()
	defer m.kill()
	n := wsCap(o.WS)
	g, err := e.startI9Proxy(ctx, kind, wsSetup(kind, n, ma, ba), masterName)
	if err != nil {
		return nil, err
	}
	defer g.kill()
	pid := g.cmd.Process.Pid
	time.Sleep(time.Second)
	rss0, gor0 := procStatus(pid, "VmRSS"), goroutines(ctx, g)
	addr := strings.TrimPrefix(g.url, "http://")
	f := openFleet(ctx, "ws://"+addr+"/websocket", n, 50, 10*time.Second, time.Now().Add(120*time.Second))
	defer f.close()
	sleepUntil(ctx, time.Now().Add(3*time.Second))
	open := f.open.Load()
	rss1, gor1, fds1 := procStatus(pid, "VmRSS"), goroutines(ctx, g), procFDs(pid)
	failedN, failedWhy := f.failedDials()
	figs := []figure{
		num("websockets open", "%.0f", float64(open), func() string {
			if failedN > 0 {
				return fmt.Sprintf("(%d failed: %s)", failedN, failedWhy)
			}
			return ""
		}()),
		num("RSS before", "%.1f MiB", float64(rss0)/1024),
		num("RSS with them open", "%.1f MiB", float64(rss1)/1024),
		num("RSS per websocket", "%.1f KiB", float64(rss1-rss0)/math.Max(1, float64(open))),
		num("proxy fds", "%.0f", float64(fds1)),
	}
	if kind == kindTandem {
		figs = append(figs, num("goroutines per websocket", "%.2f", float64(gor1-gor0)/math.Max(1, float64(open))))
	}
	return figs, nil
}

// runI9 runs the named issue 9 scenarios, o.Repeat times behind each proxy.
func runI9(ctx context.Context, e *env, names []string, o i9Opts) ([]*i9Result, error) {
	var out []*i9Result
	for _, name := range names {
		def := i9Scenario(name, o)
		for run := range o.Repeat {
			for _, kind := range o.Proxies {
				fmt.Fprintf(os.Stderr, "issue 9 scenario %s (item %s) behind %s, run %d of %d\n", name, def.Item, kind, run+1, o.Repeat)
				var figs []figure
				err := retryDied(fmt.Sprintf("%s %s", kind, name), 3, func() (err error) {
					figs, err = def.Run(ctx, e, kind, o)
					return err
				})
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", kind, name, err)
				}
				for _, f := range figs {
					fmt.Fprintf(os.Stderr, "  %s: %s\n", f.Label, f.String())
				}
				out = append(out, &i9Result{Scenario: name, Proxy: kind, Figs: figs})
			}
		}
	}
	return out, nil
}

func (f figure) String() string {
	if math.IsNaN(f.Val) {
		if f.Fmt != "" {
			return strings.TrimSpace("never " + f.Text)
		}
		return f.Text
	}
	return strings.TrimSpace(fmt.Sprintf(f.Fmt, f.Val) + " " + f.Text)
}
