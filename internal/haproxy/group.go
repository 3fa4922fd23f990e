package haproxy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tandemproxy/tandem/internal/config"
)

// groupOut is the tandem group a backend becomes, and the source lines
// of its fields (paths below the group, "" for the group itself).
type groupOut struct {
	g     config.Group
	lines map[string][]*Line
	hosts []string
}

func (o *groupOut) from(path string, ls ...*Line) {
	for _, l := range ls {
		if l != nil && !slices.Contains(o.lines[path], l) {
			o.lines[path] = append(o.lines[path], l)
		}
	}
}

// detectionWarnAbove is the failure detection time, by checks alone,
// above which the import says how long it is.
const detectionWarnAbove = 10 * time.Second

// agree returns the value of a per-server option for a group's single
// setting: the first server's where it is set (the master's in failover
// order), and says so on the lines of servers whose value differs.
func agree[T comparable](t *tracker, servers []*server, eff []serverOpts, get func(serverOpts) val[T], what string) val[T] {
	var chosen val[T]
	var by string
	for i, s := range servers {
		v := get(eff[i])
		if !v.set() {
			continue
		}
		if !chosen.set() {
			chosen, by = v, s.name
			continue
		}
		if v.v != chosen.v {
			t.warn(v.l, "tandem checks every server of a group alike: %s %v of server %s applies to %s too", what, chosen.v, by, s.name)
		}
	}
	return chosen
}

// finishServers makes the group of a backend some frontend sends to.
func (c *ctx) finishServers() {
	b, t := c.b, c.tr.t
	out := &groupOut{lines: map[string][]*Line{"name": {b.sec.Head}}}
	g := &out.g
	g.Name = b.name
	if err := config.Name(b.name); err != nil {
		t.fail(b.sec.Head, "%v: a tandem group takes the section's name", err)
		return
	}
	var servers []*server
	var eff []serverOpts
	names := map[string]*Line{}
	for _, s := range b.servers {
		o := s.opts.over(b.defServer)
		nameErr := config.Name(s.name)
		switch {
		case o.disabled.v:
			t.drop(s.l, "server %s starts disabled (in maintenance) in HAProxy: left out; add it and take it out of service with `tandem drain`", s.name)
			continue
		case nameErr != nil:
			t.fail(s.l, "%v: a tandem server keeps the name of its server line", nameErr)
			continue
		case names[s.name] != nil:
			t.fail(s.l, "server %s is already defined on line %d", s.name, names[s.name].Num)
			continue
		}
		names[s.name] = s.l
		servers, eff = append(servers, s), append(eff, o)
	}
	if len(servers) == 0 {
		t.fail(b.sec.Head, "backend %s has no server tandem can send to", b.name)
		return
	}
	active := 0
	for _, o := range eff {
		if !o.backup.v {
			active++
		}
	}
	if active == 0 {
		t.fail(b.sec.Head, "every server of backend %s is a backup: at least one must not be (it is the master)", b.name)
		return
	}
	g.Mode = config.ModeFailover
	balance := b.balance.v
	switch {
	case active == 1 || balance == "first":
		// One active server and its backups, or HAProxy's "first": the
		// first available server in file order takes everything.
		t.ok(b.balance.l)
		if active > 1 {
			out.from("mode", b.balance.l)
		}
	default:
		g.Mode = config.ModeRoundRobin
		out.from("mode", b.balance.l)
		switch balance {
		case "", "roundrobin", "static-rr":
			t.ok(b.balance.l)
		default:
			t.skip(b.balance.l, "tandem balances round robin (sticky.cookie keeps a client on its server): %s is not translated", balance)
		}
	}
	for i, s := range servers {
		srv := config.Server{Name: s.name, Address: s.addr}
		if eff[i].backup.v {
			if g.Mode == config.ModeFailover {
				srv.Backup = true
				out.from("mode", eff[i].backup.l)
			} else {
				t.warn(eff[i].backup.l, "in round-robin mode tandem sends traffic to every server: %s is not kept for failures only", s.name)
			}
		}
		if w := eff[i].weight; w.set() && g.Mode == config.ModeRoundRobin && w.v != 1 && w.v != eff[0].weight.v {
			t.skip(w.l, "weight %d: tandem shares traffic equally between a round-robin group's servers", w.v)
		}
		if w := eff[i].weight; w.set() && w.v == 0 {
			t.skip(w.l, "weight 0: HAProxy sends this server no traffic; tandem does")
		}
		g.Servers = append(g.Servers, srv)
		out.from(fmt.Sprintf("servers[%d]", i), s.l)
	}
	for _, p := range b.pins {
		if names[p.server] == nil {
			t.fail(p.l, "use-server %s: no server of that name in backend %s", p.server, b.name)
			continue
		}
		if slices.ContainsFunc(g.Pin, func(x config.Pin) bool { return x.Host == p.host }) {
			t.skip(p.l, "host %s is already pinned by an earlier use-server: HAProxy takes the first", p.host)
			continue
		}
		t.ok(p.l)
		g.Pin = append(g.Pin, config.Pin{Host: p.host, Server: p.server})
		out.from(fmt.Sprintf("pin[%d]", len(g.Pin)-1), p.l)
	}
	out.hosts = b.hosts
	out.from("hosts", b.hostLines...)
	c.health(out, servers, eff)
	c.traffic(out, servers, eff)
	b.out = out
}

// health sets the group's active check from the servers' check options,
// option httpchk and http-check.
func (c *ctx) health(out *groupOut, servers []*server, eff []serverOpts) {
	b, t := c.b, c.tr.t
	h := &out.g.Health
	var checked []*server
	var checkedEff []serverOpts
	// The master first: where servers disagree, its value is the group's.
	for _, backups := range []bool{false, true} {
		for i, s := range servers {
			if eff[i].check.v && eff[i].backup.v == backups {
				checked, checkedEff = append(checked, s), append(checkedEff, eff[i])
			}
		}
	}
	if len(checked) == 0 {
		h.Disabled = true
		t.warn(b.sec.Head, "no server has check: HAProxy never checks them, nor does tandem (health.disabled: true); only traffic takes a dead server out, so add check")
		out.from("health.disabled", b.sec.Head)
		return
	}
	for i, s := range servers {
		if !eff[i].check.v {
			t.warn(s.l, "server %s has no check: tandem checks every server of a group, this one too", s.name)
		}
	}
	if b.httpchk == nil && !b.chkPath.set() {
		t.warn(checked[0].l, "no option httpchk: HAProxy only checked that the port accepts connections; tandem checks over HTTP, GET /status answering 2xx: the servers must answer it, or add option httpchk METHOD URI")
	}
	if b.chkMethod.set() && b.chkMethod.v != "GET" {
		h.Method = b.chkMethod.v
		out.from("health.method", b.chkMethod.l)
	}
	if b.chkPath.set() {
		h.Path = b.chkPath.v
		out.from("health.path", b.chkPath.l)
	} else {
		out.from("health", checked[0].l)
	}
	if b.chkHost.set() {
		h.Host = b.chkHost.v
		out.from("health.host", b.chkHost.l)
	}
	if b.expStatus.set() {
		h.Expect.Status = b.expStatus.v
		out.from("health.expect", b.expStatus.l)
	}
	switch {
	case b.expBody.set() && b.expRegexp.set():
		t.skip(b.expRegexp.l, "tandem expects a body substring or a regular expression: the substring (line %d) is kept", b.expBody.l.Num)
		fallthrough
	case b.expBody.set():
		h.Expect.Body = b.expBody.v
		out.from("health.expect", b.expBody.l)
	case b.expRegexp.set():
		h.Expect.BodyRegexp = b.expRegexp.v
		out.from("health.expect", b.expRegexp.l)
	}
	ports := agree(t, checked, checkedEff, func(o serverOpts) val[int] { return o.port }, "check port")
	sameAsTraffic := true
	for i, s := range checked {
		if p := checkedEff[i].port; p.set() && p.v != s.port {
			sameAsTraffic = false
		}
	}
	if ports.set() && !sameAsTraffic {
		h.Port = ports.v
		out.from("health.port", ports.l)
	}
	clamp := func(v val[time.Duration], what string) time.Duration {
		if v.v < config.MinInterval {
			t.warn(v.l, "%s %v is below tandem's minimum: %v", what, v.v, config.MinInterval)
			return config.MinInterval
		}
		return v.v
	}
	inter := agree(t, checked, checkedEff, func(o serverOpts) val[time.Duration] { return o.inter }, "inter")
	interval := config.DefaultInterval
	if inter.set() {
		interval = clamp(inter, "inter")
		h.Interval = config.Duration(interval)
		out.from("health.interval", inter.l)
	}
	fast := min(config.DefaultFastInterval, interval)
	if f := agree(t, checked, checkedEff, func(o serverOpts) val[time.Duration] { return o.fastint }, "fastinter"); f.set() {
		fast = clamp(f, "fastinter")
		h.FastInterval = config.Duration(fast)
		out.from("health.fastInterval", f.l)
	}
	if r := agree(t, checked, checkedEff, func(o serverOpts) val[int] { return o.rise }, "rise"); r.set() {
		h.Rise = r.v
		out.from("health.rise", r.l)
	}
	fall := 2
	fallSet := agree(t, checked, checkedEff, func(o serverOpts) val[int] { return o.fall }, "fall")
	if fallSet.set() {
		fall = fallSet.v
		h.Fall = fall
		out.from("health.fall", fallSet.l)
	}
	timeout := min(config.DefaultTimeout, interval)
	if b.tCheck.set() {
		timeout = b.tCheck.v
		if timeout > interval {
			t.warn(b.tCheck.l, "timeout check %v is longer than the check interval %v, which tandem refuses: the interval bounds it instead", timeout, interval)
			timeout = interval
		}
		h.Timeout = config.Duration(timeout)
		out.from("health.timeout", b.tCheck.l)
	}
	// How long the checks alone take to notice a dead server: the wait for
	// the next check, then fall failed checks, fastInterval apart.
	worst := interval + timeout + time.Duration(fall-1)*(fast+timeout)
	if worst > detectionWarnAbove && inter.set() {
		hfall := 3
		if fallSet.set() {
			hfall = fallSet.v
		}
		hWorst := time.Duration(hfall) * interval
		haproxy := fmt.Sprintf("fall %d × inter %s", hfall, fmtDuration(interval))
		who := "a dead master"
		if out.g.Mode == config.ModeRoundRobin {
			who = "a dead server"
		}
		t.warn(inter.l, "inter %s (%s): kept as written, but with no traffic tandem's checks notice %s only after up to %s "+
			"(interval + timeout + (fall − 1) × (fastInterval + timeout), with fall %d, fastInterval %s, timeout %s), and HAProxy after up to %s (%s); "+
			"tandem's default interval is 1s. Live traffic takes a server that refuses connections out at once",
			wordAfter(inter.l, "inter"), fmtDuration(interval), who, fmtRound(worst), fall, fmtDuration(fast), fmtDuration(timeout), fmtRound(hWorst), haproxy)
	}
}

// wordAfter returns the word after key on l, as the source has it.
func wordAfter(l *Line, key string) string {
	if i := slices.Index(l.Words, key); i >= 0 && i+1 < len(l.Words) {
		return l.Words[i+1]
	}
	return ""
}

// fmtRound writes a duration to the millisecond below a minute, to the
// second above.
func fmtRound(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Millisecond).String()
	case d%time.Minute == 0:
		return fmtDuration(d)
	}
	return d.Round(time.Second).String()
}

// traffic sets what the group does with requests: retries, timeouts,
// passive detection, the sticky cookie, websockets.
func (c *ctx) traffic(out *groupOut, servers []*server, eff []serverOpts) {
	b, t := c.b, c.tr.t
	g := &out.g
	if r := b.retries; r.set() {
		attempts := r.v + 1
		if attempts > config.MaxAttempts {
			t.warn(r.l, "retries %d: tandem makes at most %d tries (retry.attempts: %[2]d)", r.v, config.MaxAttempts)
			attempts = config.MaxAttempts
		}
		if r.v == 0 {
			t.warn(r.l, "retries 0: no retry, so a request to a server that just died fails instead of going to the next one (tandem's default is 3 tries)")
		}
		g.Retry.Attempts = attempts
		out.from("retry.attempts", r.l)
	}
	zero := func(v val[time.Duration], what string) bool {
		if v.set() && v.v == 0 {
			t.warn(v.l, "0 means no bound in HAProxy: tandem keeps its default %s", what)
			return true
		}
		return !v.set()
	}
	if !zero(b.tConnect, "timeouts.connect (2s)") {
		g.Timeouts.Connect = config.Duration(b.tConnect.v)
		out.from("timeouts.connect", b.tConnect.l)
	}
	if !zero(b.tServer, "timeouts.response and bodyIdle (60s)") {
		g.Timeouts.Response = config.Duration(b.tServer.v)
		g.Timeouts.BodyIdle = config.Duration(b.tServer.v)
		out.from("timeouts.response", b.tServer.l)
		out.from("timeouts.bodyIdle", b.tServer.l)
		if b.tServer.v <= config.DefaultNoProgress {
			off := config.Duration(0)
			g.Passive.NoProgress = &off
			out.from("passive.noProgress", b.tServer.l)
			t.warn(b.tServer.l, "tandem's no-progress detection (%s) must be shorter than this: turned off (passive.noProgress: 0s), this timeout bounds a silent server",
				fmtDuration(config.DefaultNoProgress))
		}
	}
	var l7, limit []*Line
	for _, o := range eff {
		if o.observeL7.set() && o.observeL7.v {
			l7 = append(l7, o.observeL7.l)
		}
		if o.errorLimit.set() {
			limit = append(limit, o.errorLimit.l)
			g.Passive.MaxFails = o.errorLimit.v
		}
		if o.closeOnSwitch != nil {
			g.Websocket.OnSwitch = "close"
			out.from("websocket.onSwitch", o.closeOnSwitch)
		}
	}
	if len(l7) > 0 {
		g.Passive.Count5xx = true
		out.from("passive.count5xx", l7...)
	}
	out.from("passive.maxFails", limit...)
	if ck := b.cookie; ck.set() {
		c.sticky(out, ck)
	}
	if len(b.rules.guard) > 0 {
		g.Websocket.Paths = slices.Compact(slices.Sorted(slices.Values(b.rules.guard)))
		g.Websocket.RequireUpgrade = true
		out.from("websocket.paths", b.rules.guardLines...)
	}
}

func (c *ctx) sticky(out *groupOut, ck val[[]string]) {
	t := c.tr.t
	words := ck.v
	if out.g.Mode != config.ModeRoundRobin {
		t.skip(ck.l, "a failover group sends every request to its active server: there is nothing for a cookie to choose (sticky: is for round-robin groups)")
		return
	}
	if err := config.CookieName(words[0]); err != nil {
		t.skip(ck.l, "%v: tandem sends sticky.cookie as a Set-Cookie name, a token (no blank, control character or ()<>@,;:\\\"/[]?={}): the group is not sticky", err)
		return
	}
	var lost []string
	insert := false
	for i := 1; i < len(words); i++ {
		switch w := words[i]; w {
		case "insert":
			insert = true
		case "rewrite", "prefix":
			lost = append(lost, w+" (tandem inserts its own cookie instead)")
		case "indirect", "nocache", "httponly", "secure":
		case "domain", "maxidle", "maxlife", "attr":
			if i+1 < len(words) {
				i++
				w += " " + words[i]
			}
			lost = append(lost, w)
		default:
			lost = append(lost, w)
		}
	}
	if !insert && len(lost) == 0 {
		lost = append(lost, "no insert")
	}
	out.g.Sticky = &config.Sticky{Cookie: words[0]}
	out.from("sticky", ck.l)
	if len(lost) > 0 {
		t.warn(ck.l, "cookie %s becomes sticky.cookie; not translated: %s (tandem's cookie is Path=/, HttpOnly, SameSite=Lax, Secure over HTTPS, for the browser session)", words[0], strings.Join(lost, ", "))
	} else {
		t.ok(ck.l)
	}
}
