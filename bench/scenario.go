package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The scenarios, in the order they run and are reported.
const (
	scKill      = "kill"
	scStop      = "stop"
	scPark      = "park"
	scMute      = "mute"
	scBroken    = "broken"
	scSlow      = "slow"
	scFlap      = "flap"
	scBlackhole = "blackhole"
	sc5xx       = "5xx"
	scDown      = "down"
	scDC        = "dc"
)

var allScenarios = []string{scKill, scStop, scSlow, scFlap, scBlackhole, sc5xx, scDown, scDC}

// Knobs of the scenarios that are not the common -fault-at and -outage.
const (
	slowDelay     = 800 * time.Millisecond // added to every answer of the slow master
	slowTimeout   = 500 * time.Millisecond // tandem per-try timeout, HAProxy timeout server
	flapPeriod    = 2500 * time.Millisecond
	flapFailback  = 5 * time.Second // tandem failback after, in the flapping scenario
	failbackGrace = 4 * time.Second // load after the last event, to see the fail back
)

// scenario is one fault, run against each proxy on fresh processes.
type scenario struct {
	Name  string
	Title string
	// Setup says exactly what is done and measured, for RESULTS.md.
	Setup  string
	Length time.Duration
	// Sites: 0 everything on loopback; 1 the master in a network namespace
	// of its own; 2 the master and the backup each in one ("data centres").
	Sites int
	// Interpose puts the bench's fault interposer in front of the master.
	Interpose bool
	Proxies   proxySetup
	// Inject hurts and heals at the scenario's times, recording them in st.
	Inject func(ctx context.Context, st *stage) error
	// Allowed, if set, is how many switches tandem's policy allows.
	Allowed func(st *stage) int
	// FlapFor is how long the flapping lasts (flap only).
	FlapFor time.Duration
}

// stage is one scenario in progress: its processes and its clock.
type stage struct {
	e     *env
	sc    *scenario
	o     foOpts
	b     *backends
	g     *gateway
	sites []*nsSite
	t0    time.Time

	mu sync.Mutex
	// Fault: when the fault began. Restore: when the first server came
	// back (the master, but the backup in "down"). Master: when the master
	// came back. Negative until they happen.
	Fault, Restore, Master time.Duration
}

func (st *stage) now() time.Duration { return time.Since(st.t0) }

// at sleeps until d from the start of the load; false when ctx ended first.
func (st *stage) at(ctx context.Context, d time.Duration) bool { return sleepUntil(ctx, st.t0.Add(d)) }

func (st *stage) mark(p *time.Duration) {
	st.mu.Lock()
	*p = st.now()
	st.mu.Unlock()
}

// scenarioList parses -scenarios.
func scenarioList(s string) ([]string, error) {
	var out []string
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
		case name == "all":
			out = append(out, allScenarios...)
		case name == "issue9":
			out = append(out, i9Scenarios...)
		case scenarioDef(name, foOpts{}) != nil, i9Scenario(name, i9Opts{}) != nil:
			out = append(out, name)
		default:
			return nil, fmt.Errorf("-scenarios: unknown scenario %q (want all, issue9 or some of %s)", name,
				strings.Join(append(slices.Clone(allScenarios), i9Scenarios...), ","))
		}
	}
	return out, nil
}

// scenarioDef returns the named scenario with o's times, or nil.
func scenarioDef(name string, o foOpts) *scenario {
	fault := o.FaultAt
	switch name {
	case scKill:
		return &scenario{Name: name, Title: fmt.Sprintf("1a. master SIGKILL, new process after %v", o.Outage),
			Setup:  "SIGKILL of the master process; a new one on the same address after the outage.",
			Length: o.Length, Inject: signalFault(syscall.SIGKILL)}
	case scStop:
		return &scenario{Name: name, Title: fmt.Sprintf("1b. master SIGSTOP, SIGCONT after %v", o.Outage),
			Setup:  "SIGSTOP of the master (a frozen process: connections accepted by the kernel, never answered), SIGCONT after the outage.",
			Length: o.Length, Inject: signalFault(syscall.SIGSTOP)}
	case scPark:
		return &scenario{Name: name, Title: fmt.Sprintf("1c. master SIGSTOP with no per-try timeout, SIGCONT after %v", o.Outage),
			Setup: "SIGSTOP of the master as in 1b, but with neither proxy bounding a try: the health checks " +
				"alone take the master out (issue 9, item 1: are the requests already waiting on it parked until " +
				"SIGCONT?). tandem: no retry.perTryTimeout, timeouts.response 60s (its defaults); HAProxy: " +
				"timeout server 60s, option redispatch, on-marked-down shutdown-sessions.",
			Length: o.Length, Inject: signalFault(syscall.SIGSTOP),
			Proxies: proxySetup{tandem: tandemKnobs{PerTry: -1}, haproxy: haproxyKnobs{ServerExtra: "on-marked-down shutdown-sessions"}}}
	case scMute:
		return &scenario{Name: name, Title: fmt.Sprintf("2b. mute master: accepts requests, answers none, checks pass, for %v", o.Outage),
			Setup: "The master sits behind the bench's interposer; during the outage it holds every request but " +
				"/status until the outage ends (then forwards it): its checks pass, its traffic gets no answer " +
				"(issue 9, item 2). tandem: its defaults (passive.noProgress 5s, no per-try timeout, " +
				"timeouts.response 60s); HAProxy: timeout server 60s, option redispatch.",
			Length: o.Length, Interpose: true,
			Proxies: proxySetup{tandem: tandemKnobs{PerTry: -1}},
			Inject:  interposeFault(muteTraffic)}
	case scBroken:
		return &scenario{Name: name, Title: fmt.Sprintf("5b. broken answers, checks pass, for %v", o.Outage),
			Setup: "The master sits behind the bench's interposer; during the outage it answers every request " +
				"but /status with a head no client may accept (two Content-Lengths), while its checks pass " +
				"(issue 9, item 3: flapping under passive failures). tandem: passive {maxFails: 3, window: 10s} " +
				"and its default ejection times (5s, growing); HAProxy: observe layer7 error-limit 3 " +
				"on-error mark-down. Both fail back as soon as checks pass (tandem after 0s, HAProxy rise 2).",
			Length: o.Length, Interpose: true,
			Proxies: proxySetup{tandem: tandemKnobs{Passive: "{maxFails: 3, window: 10s}"},
				haproxy: haproxyKnobs{ServerExtra: "observe layer7 error-limit 3 on-error mark-down"}},
			Inject: interposeFault(breakTraffic)}
	case scSlow:
		return &scenario{Name: name, Title: fmt.Sprintf("2. slow master: +%v per request for %v", slowDelay, o.Outage),
			Setup: fmt.Sprintf("The master sits behind the bench's interposer (an HTTP proxy in the bench process, "+
				"in place for the whole run, both proxies alike); during the outage it holds every request to the "+
				"master for %v before forwarding it, /status included: a slow master or a slow link to it. "+
				"tandem: retry.perTryTimeout %v (then the next server); HAProxy: timeout server %v "+
				"(retry-on all-retryable-errors retries on the same server, backup servers being for when no "+
				"other is up). Both: health check timeout 500ms, fall 2.", slowDelay, slowTimeout, slowTimeout),
			Length: o.Length, Interpose: true,
			Proxies: proxySetup{tandem: tandemKnobs{PerTry: slowTimeout}, haproxy: haproxyKnobs{TimeoutServer: slowTimeout}},
			Inject:  interposeFault(addLatency)}
	case scFlap:
		flapFor := 20 * time.Second
		if o.Length < 15*time.Second { // -quick
			flapFor = 10 * time.Second
		}
		return &scenario{Name: name, Title: fmt.Sprintf("3. flapping master: /status 503 and back every %v for %v", flapPeriod, flapFor),
			Setup: fmt.Sprintf("POST /admin/health?ok=false, then ?ok=true, to the master every %v for %v: its /status "+
				"answers 503, then 200 (traffic is served all along). tandem: failback {policy: auto, after: %v}; "+
				"HAProxy has no hold-down (rise 2 is all). Both: interval 1s, fast 250ms, rise 2, fall 2.",
				flapPeriod, flapFor, flapFailback),
			FlapFor: flapFor, Length: fault + flapFor + flapFailback + failbackGrace,
			// flapPhases rounds FlapFor to an even number of phases.
			Proxies: proxySetup{tandem: tandemKnobs{FailbackAfter: flapFailback}},
			Inject:  flap, Allowed: flapAllowed}
	case scBlackhole:
		return &scenario{Name: name, Title: fmt.Sprintf("4. black-holed master for %v", o.Outage),
			Setup: "The master runs in a network namespace of its own (veth to the host, 10.201.N.2); the " +
				"proxies and the backup on the host. The fault is an nft table inside that namespace whose " +
				"input, output and forward chains drop everything (no RST, no ICMP); removed after the outage. " +
				"Established connections hang, new ones time out (connect timeout 2s on both).",
			Length: o.Length, Sites: 1, Inject: cutFault}
	case sc5xx:
		return &scenario{Name: name, Title: fmt.Sprintf("5. healthy checks, failing traffic: master answers 500 for %v", o.Outage),
			Setup: "The master sits behind the bench's interposer; during the outage it sends every request but " +
				"/status to the master's /error (500 from the app itself), so active checks keep passing. " +
				"tandem: passive {maxFails: 3, window: 10s, count5xx: true}; HAProxy: observe layer7 " +
				"error-limit 3 on-error mark-down (and retry-on all-retryable-errors, which includes 500). " +
				"Both fail back as soon as checks pass (tandem after 0s, HAProxy rise 2).",
			Length: o.Length, Interpose: true,
			Proxies: proxySetup{tandem: tandemKnobs{Passive: "{maxFails: 3, window: 10s, count5xx: true}"},
				haproxy: haproxyKnobs{ServerExtra: "observe layer7 error-limit 3 on-error mark-down"}},
			Inject: interposeFault(failTraffic)}
	case scDown:
		return &scenario{Name: name, Title: fmt.Sprintf("6. both servers down; backup back after %v, master after %v", o.Outage, 2*o.Outage),
			Setup: "SIGKILL of the master and the backup at once; a new backup after the outage, a new master " +
				"after twice the outage. Shows what each proxy answers with no server (tandem: 503 with " +
				"Retry-After), and how soon it serves again.",
			Length: max(o.Length, fault+2*o.Outage+failbackGrace), Inject: bothDown}
	case scDC:
		return &scenario{Name: name, Title: fmt.Sprintf("7. data centre A cut off for %v", o.Outage),
			Setup: "Two sites: namespace dc-a holds the master, dc-b the backup, each behind its own veth; the " +
				"proxies on the host. The fault is an nft table in dc-a that drops everything, as if its " +
				"uplink died; removed after the outage.",
			Length: o.Length, Sites: 2, Inject: cutFault}
	}
	return nil
}

// signalFault sends sig to the master at the fault and heals it after the
// outage: a new process after SIGKILL, SIGCONT after SIGSTOP.
func signalFault(sig syscall.Signal) func(context.Context, *stage) error {
	return func(ctx context.Context, st *stage) error {
		if !st.at(ctx, st.o.FaultAt) {
			return nil
		}
		st.mark(&st.Fault)
		if err := st.b.master.signal(sig); err != nil {
			return fmt.Errorf("fault: %w", err)
		}
		if !st.at(ctx, st.o.FaultAt+st.o.Outage) {
			return nil
		}
		st.mark(&st.Restore)
		st.mark(&st.Master)
		if sig == syscall.SIGSTOP {
			if err := st.b.master.signal(syscall.SIGCONT); err != nil {
				return fmt.Errorf("resume: %w", err)
			}
			return nil
		}
		return st.e.restartMaster(ctx, st.b)
	}
}

// interposeFault switches the interposer to mode for the outage.
func interposeFault(mode int32) func(context.Context, *stage) error {
	return func(ctx context.Context, st *stage) error {
		if !st.at(ctx, st.o.FaultAt) {
			return nil
		}
		st.mark(&st.Fault)
		st.b.fault.set(mode)
		if !st.at(ctx, st.o.FaultAt+st.o.Outage) {
			return nil
		}
		st.mark(&st.Restore)
		st.mark(&st.Master)
		st.b.fault.set(passThrough)
		return nil
	}
}

// cutFault cuts the master's site off for the outage.
func cutFault(ctx context.Context, st *stage) error {
	if !st.at(ctx, st.o.FaultAt) {
		return nil
	}
	site := st.sites[0]
	st.mark(&st.Fault)
	if err := site.cutOff(ctx); err != nil {
		return err
	}
	if !st.at(ctx, st.o.FaultAt+st.o.Outage) {
		return nil
	}
	st.mark(&st.Restore)
	st.mark(&st.Master)
	return site.reconnect(ctx)
}

// flapPhases is how many phases of flapPeriod the flapping has: failing,
// passing, failing, ..., always ending with a passing one.
func flapPhases(sc *scenario) int {
	n := int(sc.FlapFor / flapPeriod)
	if n%2 == 1 {
		n++
	}
	return max(n, 2)
}

// flap makes the master's health check fail and pass in turn.
func flap(ctx context.Context, st *stage) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	set := func(ok bool) error {
		url := fmt.Sprintf("http://%s/admin/health?ok=%v", st.b.masterApp, ok)
		resp, err := client.Post(url, "text/plain", nil)
		if err != nil {
			return fmt.Errorf("flap: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("flap: POST %s: %s", url, resp.Status)
		}
		return nil
	}
	n := flapPhases(st.sc)
	for i := range n {
		if !st.at(ctx, st.o.FaultAt+time.Duration(i)*flapPeriod) {
			return nil
		}
		healthy := i%2 == 1
		if err := set(healthy); err != nil {
			return err
		}
		switch {
		case i == 0:
			st.mark(&st.Fault)
		case i == n-1:
			// The last phase lasts to the end of the load.
			st.mark(&st.Restore)
			st.mark(&st.Master)
		}
	}
	return nil
}

// flapAllowed is how many switches tandem's failback policy allows for the
// flapping: one away at the first failure; then, for every passing phase
// at least failback.after long, one back, and one away again when another
// failing phase follows. The last passing phase lasts to the end of the load.
func flapAllowed(st *stage) int {
	n := flapPhases(st.sc)
	allowed := 1
	for i := 1; i < n-1; i += 2 {
		if flapPeriod >= flapFailback {
			allowed += 2
		}
	}
	if st.sc.Length-(st.o.FaultAt+time.Duration(n-1)*flapPeriod) >= flapFailback {
		allowed++
	}
	return allowed
}

// bothDown kills both servers, then brings the backup back, then the master.
func bothDown(ctx context.Context, st *stage) error {
	if !st.at(ctx, st.o.FaultAt) {
		return nil
	}
	st.mark(&st.Fault)
	if err := st.b.master.signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("fault: %w", err)
	}
	if err := st.b.backup.signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("fault: %w", err)
	}
	if !st.at(ctx, st.o.FaultAt+st.o.Outage) {
		return nil
	}
	st.mark(&st.Restore)
	if err := st.e.restartBackup(ctx, st.b); err != nil {
		return err
	}
	if !st.at(ctx, st.o.FaultAt+2*st.o.Outage) {
		return nil
	}
	st.mark(&st.Master)
	return st.e.restartMaster(ctx, st.b)
}

// scResult is one scenario behind one proxy.
type scResult struct {
	Scenario string
	Proxy    proxyKind
	*foResult
	Switches []switchRec
	// SwitchAt: fault to the proxy's first switch. FailbackAt: the
	// master's return to the switch that made it active for good (0 when
	// it was active then already). Negative: never.
	SwitchAt, FailbackAt time.Duration
	// Recovery: first server back to the first 2xx answer ("down").
	Recovery   time.Duration
	RetryAfter int // failed answers that carried Retry-After
	Allowed    int // switches tandem's policy allows (flap), else -1
	Note       string
	Restore    time.Duration
	Master     time.Duration
}

// runScenarioOnce runs sc behind kind on fresh processes (and namespaces).
func runScenarioOnce(ctx context.Context, e *env, sc *scenario, kind proxyKind, o foOpts) (*scResult, error) {
	st := &stage{e: e, sc: sc, o: o, Fault: -1, Restore: -1, Master: -1}
	ms, bs := hostSite, hostSite
	for i, label := range []string{"dc-a", "dc-b"}[:sc.Sites] {
		// A half-made site stays listed in e.lab, which run cleans up.
		s, err := e.lab.addSite(ctx, label)
		if err != nil {
			return nil, err
		}
		defer e.lab.remove(s) // deferred first, so it runs after the kills below
		st.sites = append(st.sites, s)
		if i == 0 {
			ms = s.site
		} else {
			bs = s.site
		}
	}
	b, err := e.startBackendsAt(ctx, ms, bs)
	if err != nil {
		return nil, err
	}
	defer b.kill() // reads b.master at exit: the restarted master, if any
	st.b = b
	if sc.Interpose {
		if b.fault, err = startInterposer(b.masterApp, slowDelay); err != nil {
			return nil, err
		}
		b.masterAddr = b.fault.addr
	}
	g, err := e.startProxyWith(ctx, kind, b, sc.Proxies)
	if err != nil {
		return nil, err
	}
	defer g.kill()
	st.g = g

	st.t0 = time.Now()
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var (
		watch    *haproxyWatch
		faultErr error
		wg, ww   sync.WaitGroup
	)
	if kind == kindHAProxy {
		watch = &haproxyWatch{sock: g.sock, log: filepath.Join(e.dir, g.name+".log"), t0: st.t0}
		ww.Go(func() { watch.run(wctx) })
	}
	wg.Go(func() { faultErr = sc.Inject(ctx, st) })
	samples := runLoad(ctx, loadSpec{URL: g.url + "/hello", Clients: o.Clients, Duration: sc.Length,
		Timeout: o.Timeout, MaxPer: 1 << 22, Grace: time.Second}, st.t0)
	wg.Wait()
	stopWatch()
	ww.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("interrupted: %w", err)
	}
	if faultErr != nil {
		return nil, faultErr
	}
	if err := alive(g.proc, b.master, b.backup); err != nil {
		return nil, err
	}
	r := &scResult{Scenario: sc.Name, Proxy: kind, Allowed: -1, Restore: st.Restore, Master: st.Master}
	r.foResult = analyze(samples, st.Fault, st.Master)
	r.foResult.Proxy, r.foResult.Fault = kind, fault(sc.Name)
	if kind == kindTandem {
		if r.Switches, err = tandemSwitches(ctx, e, g, st.t0); err != nil {
			return nil, err
		}
		if sc.Allowed != nil {
			r.Allowed = sc.Allowed(st)
		}
	} else {
		if r.Switches, err = watch.switches(); err != nil {
			return nil, err
		}
		if downs, err := haproxyDowns(g.sock); err == nil {
			r.Note = fmt.Sprintf("show stat: master UP→DOWN %d times", downs)
		}
	}
	r.SwitchAt, r.FailbackAt = switchTimes(r.Switches, st.Fault, st.Master)
	r.Recovery = -1
	for _, s := range samples {
		if s.failed() && s.retryAfter {
			r.RetryAfter++
		}
		if r.Recovery < 0 && st.Restore >= 0 && s.outcome == outOK && s.end >= st.Restore {
			r.Recovery = s.end - st.Restore
		}
	}
	return r, nil
}

// switchTimes reads the proxy's record: fault to its first switch, and the
// master's return to the switch that made the master active for good.
func switchTimes(recs []switchRec, fault, back time.Duration) (sw, fb time.Duration) {
	sw, fb = -1, -1
	for _, s := range recs {
		if fault >= 0 && s.At >= fault && sw < 0 {
			sw = s.At - fault
		}
	}
	if back < 0 || len(recs) == 0 || recs[len(recs)-1].To != masterName {
		return sw, fb
	}
	return sw, max(0, recs[len(recs)-1].At-back)
}

// runScenarios runs each named scenario against tandem, then HAProxy.
func runScenarios(ctx context.Context, e *env, names []string, o foOpts) ([]*scResult, error) {
	// Namespaces first: without root, say so before minutes of other scenarios.
	for _, name := range names {
		if scenarioDef(name, o).Sites > 0 && e.lab == nil {
			lab, err := newNetLab()
			if err != nil {
				return nil, fmt.Errorf("scenario %s: %w (leave out blackhole and dc)", name, err)
			}
			e.lab = lab
		}
	}
	var out []*scResult
	for _, name := range names {
		sc := scenarioDef(name, o)
		for _, kind := range []proxyKind{kindTandem, kindHAProxy} {
			fmt.Fprintf(os.Stderr, "scenario %s behind %s (%v)\n", name, kind, sc.Length)
			var r *scResult
			err := retryDied(fmt.Sprintf("%s %s", kind, name), 3, func() (err error) {
				r, err = runScenarioOnce(ctx, e, sc, kind, o)
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", kind, name, err)
			}
			fmt.Fprintf(os.Stderr, "  %d requests, %d failed %s; %d switches, switch %s, failback %s; client: backup %s, master %s\n  %s\n",
				r.Total, r.Failed, r.Why, len(r.Switches), fmtDur(r.SwitchAt), fmtDur(r.FailbackAt),
				fmtDur(r.Failover), fmtDur(r.Failback), r.Timeline)
			out = append(out, r)
		}
	}
	return out, nil
}
