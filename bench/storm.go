package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// The storm (issue 9 item 7): N websockets through the proxy to the
// master, the master SIGKILLed, every client reconnecting with appkit's
// policy (appkit/hub.js) onto the backup.
const (
	stormTick     = time.Second // the helpers tick each websocket, as the demo app does
	stormKillAt   = 2 * time.Second
	stormMaxDials = 60               // bound of dials per client
	stormDialWait = 10 * time.Second // a handshake that takes longer failed
	stormRamp     = 100              // websockets opened at once before the kill
)

// stormN is the storm's size: 99% of -ws (the 9,900 of 10,000),
// less if the fd limit is short (wsCap).
func stormN(o i9Opts) int { return wsCap(o.WS * 99 / 100) }

// fdHard is the hard RLIMIT_NOFILE the bench and its children have; a
// process without CAP_SYS_RESOURCE (as in some sandboxes) cannot raise it.
func fdHard() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1 << 20
	}
	return rl.Max
}

// wsCap bounds a number of websockets through a proxy by what the hard fd
// limit allows: two fds each in the proxy, and a margin for its listeners,
// checks and logs.
func wsCap(want int) int { return max(1, min(want, int(fdHard()-200)/2)) }

// wsNoFile is the RLIMIT_NOFILE a proxy gets for n websockets: plenty,
// within the hard limit.
func wsNoFile(n int) uint64 { return min(uint64(4*n+1024), fdHard()) }

// stormLength is how long the clients are watched after the kill.
func stormLength(o i9Opts) time.Duration {
	if o.WS < 5000 {
		return 15 * time.Second
	}
	return 30 * time.Second
}

func stormSetup(o i9Opts) string {
	perTry := "no per-try timeout (its default)"
	if o.StormPerTry > 0 {
		perTry = fmt.Sprintf("retry.perTryTimeout %v (which bounds a websocket handshake too)", o.StormPerTry)
	}
	return fmt.Sprintf("Helper backends that tick each websocket every %v. %d clients open a websocket each "+
		"to the master (%d at a time), then the master is SIGKILLed and every client reconnects with appkit's "+
		"policy (appkit/hub.js: at once with 0-100ms on 1012, 200ms±20%% on 1001 and 1013, else 250ms doubling "+
		"to 5s ±20%% per failure in a row; a handshake taking over %v fails; at most %d dials each), "+
		"watched for %v after the kill. The master stays dead. tandem: websocket close on switch, %s, its default "+
		"maxConnections (10000, lowered to what the fd limit allows); HAProxy: maxconn %d, timeout tunnel 1h. "+
		"Both: RLIMIT_NOFILE %d (prlimit), "+
		"the checks of the other scenarios (interval 1s, fast 250ms, timeout 500ms, rise 2, fall 2).",
		stormTick, stormN(o), stormRamp, stormDialWait, stormMaxDials, stormLength(o), perTry, stormN(o)+20, wsNoFile(stormN(o)))
}

// stormClient is one client's record, on the kill's clock.
type stormClient struct {
	reconnects int             // handshakes completed after the kill
	failed     int             // dials that failed after the kill
	closedBack int             // reconnected after the kill, then closed again
	backAt     time.Duration   // the start of its last websocket (to the end), if open at the end
	open       bool            // open when the watch ended
	server     string          // of that websocket
	closeWhy   map[string]int  // of the websockets closed after the kill
	failWhy    map[string]int  // of the failed dials
	firstBack  time.Duration   // first reconnect after the kill; -1 none
	times      []time.Duration // of every reconnect
}

// appkitDelay is hub.js's delay(code) for a close with code after
// failures unanswered handshakes in a row (0: the last one was greeted).
func appkitDelay(code, failures int) time.Duration {
	jitter := func(ms float64) time.Duration {
		return time.Duration(ms * (0.8 + rand.Float64()*0.4) * float64(time.Millisecond))
	}
	switch code {
	case 1012:
		return time.Duration(rand.Float64() * 100 * float64(time.Millisecond))
	case 1001, 1013:
		return jitter(200)
	}
	return jitter(math.Min(5000, 250*math.Pow(2, float64(max(0, failures-1)))))
}

// stormRun is one client: its first websocket is open (c), the loop
// reconnects as appkit does until end.
func stormRun(ctx context.Context, url string, c *websocket.Conn, kill *atomic.Int64, end time.Time, rec *stormClient) {
	since := func() time.Duration {
		k := kill.Load()
		if k == 0 {
			return -1
		}
		return time.Duration(time.Now().UnixNano() - k)
	}
	rec.firstBack = -1
	failures := 0
	start := time.Duration(-1) // of the current websocket, on the kill's clock
	for dials := 0; ; {
		// Read until the websocket closes or the watch ends.
		var err error
		rctx, cancel := context.WithDeadline(ctx, end)
		for err == nil {
			_, _, err = c.Read(rctx)
		}
		cancel()
		if time.Now().After(end) || ctx.Err() != nil {
			c.CloseNow()
			rec.open, rec.backAt = true, start
			return
		}
		code := int(websocket.CloseStatus(err))
		if start >= 0 {
			rec.closedBack++
		}
		if since() >= 0 {
			rec.closeWhy[wsErrKind(err)]++
		}
		c.CloseNow()
		if code == 4401 || code == 1008 {
			return
		}
		// It was greeted (wsDial reads the greeting): failures start anew.
		failures = 0
		if code != 1012 && code != 1001 {
			failures = 1
		}
		wait := appkitDelay(code, failures)
		for {
			if !sleepUntil(ctx, time.Now().Add(wait)) || time.Now().After(end) {
				return
			}
			if dials++; dials > stormMaxDials {
				return
			}
			var name string
			c, name, err = wsDial(ctx, url, stormDialWait)
			if err == nil {
				start = since()
				rec.reconnects++
				rec.server = name
				rec.times = append(rec.times, start)
				if rec.firstBack < 0 {
					rec.firstBack = start
				}
				break
			}
			rec.failed++
			rec.failWhy[wsErrKind(err)]++
			failures++
			wait = appkitDelay(1006, failures)
		}
	}
}

// runStorm: item 7.
func runStorm(ctx context.Context, e *env, kind proxyKind, o i9Opts) ([]figure, error) {
	n := stormN(o)
	m, b, ma, ba, err := e.i9Backends(ctx, stormTick, false)
	if err != nil {
		return nil, err
	}
	defer b.kill()
	defer m.kill()
	setup := wsSetup(kind, n, ma, ba)
	setup.PerTry = o.StormPerTry
	g, err := e.startI9Proxy(ctx, kind, setup, masterName)
	if err != nil {
		return nil, err
	}
	defer g.kill()
	url := "ws://" + strings.TrimPrefix(g.url, "http://") + "/websocket"

	// The ramp: every client's first websocket, stormRamp at a time.
	recs := make([]*stormClient, n)
	conns := make([]*websocket.Conn, n)
	var next atomic.Int64
	var ramp sync.WaitGroup
	rampErrs := map[string]int{}
	var mu sync.Mutex
	rampEnd := time.Now().Add(3 * time.Minute)
	for range stormRamp {
		ramp.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				for try := 0; try < 3 && time.Now().Before(rampEnd); try++ {
					c, _, err := wsDial(ctx, url, stormDialWait)
					if err == nil {
						conns[i] = c
						break
					}
					mu.Lock()
					rampErrs[wsErrKind(err)]++
					mu.Unlock()
				}
			}
		})
	}
	ramp.Wait()
	opened := 0
	for _, c := range conns {
		if c != nil {
			opened++
		}
	}
	if opened < n {
		for _, c := range conns {
			if c != nil {
				c.CloseNow()
			}
		}
		return nil, fmt.Errorf("storm: only %d of %d websockets opened before the kill (%s)", opened, n, summarize(rampErrs))
	}
	fmt.Fprintf(os.Stderr, "  %d websockets open; SIGKILL of the master in %v\n", n, stormKillAt)

	var kill atomic.Int64
	sleepUntil(ctx, time.Now().Add(stormKillAt))
	t0 := time.Now()
	off := e.logSize(g)
	switches := e.watchSwitches(ctx, g, t0)
	end := t0.Add(stormLength(o))
	var clients sync.WaitGroup
	for i := range n {
		recs[i] = &stormClient{closeWhy: map[string]int{}, failWhy: map[string]int{}}
		clients.Go(func() { stormRun(ctx, url, conns[i], &kill, end, recs[i]) })
	}
	// The open count, sampled, to say when all were back.
	kill.Store(t0.UnixNano())
	if err := m.signal(syscall.SIGKILL); err != nil {
		return nil, err
	}
	var backSt helperStats
	var sampler sync.WaitGroup
	var series []string
	sampler.Go(func() {
		for _, at := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 20 * time.Second} {
			if at >= stormLength(o) || !sleepUntil(ctx, t0.Add(at)) {
				break
			}
			st, err := helperStatsOf(ctx, ba)
			if err == nil {
				series = append(series, fmt.Sprintf("%v %d", at.Round(time.Second), st.Websockets))
			}
		}
		// The backup's own count just before the clients end.
		if sleepUntil(ctx, end.Add(-time.Second)) {
			backSt, _ = helperStatsOf(ctx, ba)
		}
	})
	clients.Wait()
	sampler.Wait()
	log := e.logSince(g, off)
	sw, err := switches()
	if err != nil {
		return nil, err
	}
	var (
		openEnd, onBackup, reconnected, failed, closedBack, never int
		backs, firsts                                             []time.Duration
		closeWhy, failWhy                                         = map[string]int{}, map[string]int{}
	)
	for _, r := range recs {
		reconnected += r.reconnects
		failed += r.failed
		closedBack += r.closedBack
		for k, v := range r.closeWhy {
			closeWhy[k] += v
		}
		for k, v := range r.failWhy {
			failWhy[k] += v
		}
		if r.firstBack >= 0 {
			firsts = append(firsts, r.firstBack)
		} else {
			never++
		}
		if r.open {
			openEnd++
			if r.server == backupName {
				onBackup++
			}
			if r.backAt >= 0 {
				backs = append(backs, r.backAt)
			}
		}
	}
	slices.Sort(backs)
	slices.Sort(firsts)
	allBack := time.Duration(-1)
	if openEnd == n && len(backs) == n {
		allBack = backs[n-1]
	}
	dn, dwhy := downs(kind, log)
	backupDowns, downWhy := 0, map[string]int{}
	for _, d := range downEvents(kind, log) {
		if d.server == backupName {
			backupDowns++
			downWhy[d.why]++
		}
	}
	figs := []figure{
		num("backup declared down", "%.0f", float64(backupDowns), summarize(downWhy)),
		num("servers marked down (all)", "%.0f", float64(dn), dwhy),
		switchFig(sw),
		num("websockets open at the end", "%.0f", float64(openEnd), fmt.Sprintf("of %d (%d on the backup, which counts %d)", n, onBackup, backSt.Websockets)),
		num("reconnects (handshakes completed after the kill)", "%.0f", float64(reconnected)),
		num("reconnected, then closed again", "%.0f", float64(closedBack)),
		num("failed reconnects (dials)", "%.0f", float64(failed), summarize(failWhy)),
		num("clients never back", "%.0f", float64(never)),
		num("kill → median client back (first reconnect)", "%.2fs", pct(firsts, 0.5)),
		num("kill → 99% of clients back", "%.2fs", pct(firsts, 0.99)),
		num("kill → all back for good", "%.2fs", secOrNaN(allBack)),
		txt("websockets on the backup after the kill", strings.Join(series, ", ")),
		txt("closes after the kill, why", summarize(closeWhy)),
	}
	if kind == kindTandem {
		if page, err := scrape(ctx, g.admin+"/metrics"); err == nil {
			figs = append(figs, txt("backup check failures", metricLines(page, "tandem_health_check_failures_total")))
		}
	} else {
		figs = append(figs, txt("backup in show stat", haproxyStat(g.sock, "bench", backupName, "chkfail", "chkdown", "scur", "smax")))
	}
	return figs, nil
}

// pct is the p-quantile of sorted ds in seconds (NaN if none).
func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	return sorted[min(len(sorted)-1, int(math.Ceil(p*float64(len(sorted))))-1)].Seconds()
}
