package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// report is everything the final table and RESULTS.md show.
type report struct {
	Command  string
	Date     time.Time
	Tandem   string
	HAProxyV string
	NginxV   string // nginx -v, when throughput ran
	WrkV     string // wrk -v
	RetryOn  bool
	NProc    string
	LoadPre  string // load average before the run
	LoadPost string // and after
	GoVer    string
	Tput     tputOpts
	FO       foOpts
	Through  map[string]*tputResult
	Failover []*foResult
	// Main: this run is the default one (throughput, kill and stop), the
	// first part of RESULTS.md.
	Main      bool
	Scenarios []*scResult // -scenarios
	I9        []*i9Result // -scenarios with issue 9's (cut, stall, fds, storm, dns, idle)
	I9Opts    i9Opts
	Soak      *soakResult // -soak
}

// tables prints the tables of whatever this run measured.
func (r *report) tables(w io.Writer) {
	if r.Main {
		r.table(w)
	}
	if len(r.Scenarios) > 0 {
		r.scenarioTable(w)
	}
	if len(r.I9) > 0 {
		r.i9Tables(w)
	}
	if r.Soak != nil {
		r.soakTable(w)
	}
}

// table renders the one comparison table: throughput rows, then a block of
// rows per failover scenario.
func (r *report) table(w io.Writer) {
	fmt.Fprintln(w, "| GET /hello | direct | tandem | HAProxy | nginx | tandem/HAProxy (median of each run's) |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|")
	if r.Through != nil {
		r.throughputRows(w)
	}
	r.failoverRows(w)
}

// through returns the medians of target name (own load generator, wrk),
// nil when it was not measured.
func (r *report) through(name string, wrk bool) *tputRun {
	x := r.Through[name]
	switch {
	case x == nil:
		return nil
	case wrk && len(x.Wrk) > 0:
		return &x.WrkMed
	case wrk:
		return nil
	}
	return &x.Median
}

// runs returns the runs of target name (own load generator, wrk).
func (r *report) runs(name string, wrk bool) []tputRun {
	x := r.Through[name]
	switch {
	case x == nil:
		return nil
	case wrk:
		return x.Wrk
	}
	return x.Runs
}

// pairedRatio is the median over the runs of f(a's run i) / f(b's run i),
// runs without a figure left out.
func pairedRatio(a, b []tputRun, f func(tputRun) float64) float64 {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if x, y := f(a[i]), f(b[i]); x > 0 && y > 0 {
			rs = append(rs, x/y)
		}
	}
	if len(rs) == 0 {
		return 0
	}
	return median(rs)
}

func (r *report) throughputRows(w io.Writer) {
	type block struct {
		title                 string
		direct, tan, hap, ngx string
		wrk, vsDirect         bool
	}
	own := fmt.Sprintf("%d clients of the bench's own", r.Tput.Clients)
	viaWrk := fmt.Sprintf("wrk -t%d -c%d", wrkThreads, wrkConns)
	for _, b := range []block{
		{"", "direct", string(kindTandem), string(kindHAProxy), string(kindNginx), false, true},
		{"**under wrk** (" + viaWrk + ", a C load generator: less CPU taken from the proxies)", "direct", string(kindTandem), string(kindHAProxy), string(kindNginx), true, true},
		{"**over HTTPS** (TLS, HTTP/1.1; direct stays plain), " + own, "", tandemTLS, haproxyTLS, nginxTLS, false, false},
		{"**over HTTPS under wrk** (" + viaWrk + ")", "", tandemTLS, haproxyTLS, nginxTLS, true, false},
	} {
		d, t, h, n := r.through(b.direct, b.wrk), r.through(b.tan, b.wrk), r.through(b.hap, b.wrk), r.through(b.ngx, b.wrk)
		if t == nil || h == nil {
			continue
		}
		if b.title != "" {
			fmt.Fprintf(w, "| %s | | | | | |\n", b.title)
		}
		cell := func(x *tputRun, f func(tputRun) string) string {
			if x == nil {
				return ""
			}
			return f(*x)
		}
		rps := func(x tputRun) string { return fmt.Sprintf("%.0f", x.RPS) }
		p50 := func(x tputRun) string { return fmtLat(x.P50) }
		p99 := func(x tputRun) string { return fmtLat(x.P99) }
		failed := func(x tputRun) string { return fmt.Sprint(x.Failed) }
		cpu := func(x tputRun) string { return fmtCPU(x.CPU) }
		label := "req/s"
		if b.title == "" {
			label = fmt.Sprintf("req/s (%s, median of %d×%v)", own, r.Tput.Runs, r.Tput.Duration)
		} else if b.wrk {
			label = fmt.Sprintf("req/s (median of %d×%v)", r.Tput.Runs, r.Tput.Duration)
		}
		// The ratios pair each run of tandem with HAProxy's, which follows
		// it at once: on a shared machine a slow phase hits both of a pair,
		// not the medians of the two alike.
		tr, hr := r.runs(b.tan, b.wrk), r.runs(b.hap, b.wrk)
		paired := func(f func(tputRun) float64) string { return fmt.Sprintf("%.2f", pairedRatio(tr, hr, f)) }
		row(w, label, cell(d, rps), rps(*t), rps(*h), cell(n, rps), paired(func(x tputRun) float64 { return x.RPS }))
		row(w, "p50 latency", cell(d, p50), p50(*t), p50(*h), cell(n, p50), paired(func(x tputRun) float64 { return float64(x.P50) }))
		row(w, "p99 latency", cell(d, p99), p99(*t), p99(*h), cell(n, p99), paired(func(x tputRun) float64 { return float64(x.P99) }))
		if t.CPU > 0 && h.CPU > 0 {
			row(w, "proxy CPU per request (user+system)", "", cpu(*t), cpu(*h), cell(n, cpu), paired(func(x tputRun) float64 { return float64(x.CPU) }))
		}
		if b.vsDirect && d != nil {
			vs := func(x *tputRun) string {
				if x == nil {
					return ""
				}
				return fmt.Sprintf("%.2f", x.RPS/d.RPS)
			}
			row(w, "req/s vs direct", "1.00", vs(t), vs(h), vs(n), "")
			added := func(x *tputRun) string {
				if x == nil {
					return ""
				}
				return fmtDelta(x.P99 - d.P99)
			}
			row(w, "p99 added vs direct", "", added(t), added(h), added(n), "")
		}
		row(w, "failed requests (all runs)", cell(d, failed), failed(*t), failed(*h), cell(n, failed), "")
	}
}

func (r *report) failoverRows(w io.Writer) {
	for _, f := range []fault{faultKill, faultStop} {
		tr, hr := r.find(kindTandem, f), r.find(kindHAProxy, f)
		if tr == nil || hr == nil {
			continue
		}
		title := r.faultTitle(f)
		fmt.Fprintf(w, "| **%s** (%d clients, %v; nginx has no active checks: not run) | | | | | |\n", title, r.FO.Clients, r.FO.Length)
		row(w, "failed requests", "", failedCell(tr), failedCell(hr), "", "")
		row(w, "closed without an answer, replayed by the client", "", fmt.Sprint(tr.Replay), fmt.Sprint(hr.Replay), "", "")
		row(w, "fault → first answer by backup", "", fmtDur(tr.Failover), fmtDur(hr.Failover), "", "")
		row(w, "restart → first answer by master", "", fmtDur(tr.Failback), fmtDur(hr.Failback), "", "")
		row(w, fmt.Sprintf("answers slower than %v", slowAfter), "", fmt.Sprint(tr.Slow), fmt.Sprint(hr.Slow), "", "")
		row(w, "max latency of an answer", "", fmtLat(tr.MaxLat), fmtLat(hr.MaxLat), "", "")
	}
}

func (r *report) faultTitle(f fault) string {
	if f == faultKill {
		return fmt.Sprintf("SIGKILL master, new process after %v", r.FO.Outage)
	}
	return fmt.Sprintf("SIGSTOP master, SIGCONT after %v", r.FO.Outage)
}

func (r *report) find(kind proxyKind, f fault) *foResult {
	for _, x := range r.Failover {
		if x.Proxy == kind && x.Fault == f {
			return x
		}
	}
	return nil
}

func row(w io.Writer, cells ...string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
}

func failedCell(r *foResult) string {
	s := fmt.Sprintf("%d of %d", r.Failed, r.Total)
	if r.Why != "" {
		s += " (" + r.Why + ")"
	}
	return s
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// fmtLat prints a latency with three significant digits.
func fmtLat(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	}
}

// fmtDelta prints a signed latency difference.
func fmtDelta(d time.Duration) string {
	if d < 0 {
		return "-" + fmtLat(-d)
	}
	return "+" + fmtLat(d)
}

// fmtDur prints a scenario time; negative means the event never happened.
func fmtDur(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmtLat(d)
}

// markdown renders RESULTS.md: context, the table, the runs behind the
// medians, the scenario timings and the method.
func (r *report) markdown(w io.Writer) {
	fmt.Fprintf(w, "# tandem vs HAProxy: throughput and failover\n\n")
	r.context(w)
	r.table(w)
	if r.Through != nil {
		r.throughputDetails(w)
	}
	if len(r.Failover) > 0 {
		r.failoverDetails(w)
	}
	fmt.Fprint(w, method)
}

// context lists what a section's figures depend on.
func (r *report) context(w io.Writer) {
	fmt.Fprintf(w, "- command: `%s`\n", r.Command)
	fmt.Fprintf(w, "- date: %s\n", r.Date.Format(time.RFC3339))
	fmt.Fprintf(w, "- tandem: %s\n", r.Tandem)
	fmt.Fprintf(w, "- haproxy -v: %s (retry-on all-retryable-errors: %v)\n", r.HAProxyV, r.RetryOn)
	if r.NginxV != "" {
		fmt.Fprintf(w, "- nginx -v: %s; wrk -v: %s\n", r.NginxV, r.WrkV)
	}
	fmt.Fprintf(w, "- nproc: %s (load generator, proxy and backends share these CPUs)\n", r.NProc)
	fmt.Fprintf(w, "- load average (1, 5, 15 min): %s before, %s after\n", r.LoadPre, r.LoadPost)
	fmt.Fprintf(w, "- go: %s\n\n", r.GoVer)
}

func (r *report) throughputDetails(w io.Writer) {
	fmt.Fprintf(w, "\n## Throughput runs (interleaved, every other run in reverse order; the table shows per-metric medians)\n\n")
	fmt.Fprintln(w, "| target | load | run | req/s | p50 | p99 | failed | proxy CPU/req |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|")
	for _, name := range []string{"direct", string(kindTandem), string(kindHAProxy), string(kindNginx), tandemTLS, haproxyTLS, nginxTLS} {
		if r.Through[name] == nil {
			continue
		}
		for _, by := range []struct {
			name string
			runs []tputRun
		}{{"own", r.Through[name].Runs}, {"wrk", r.Through[name].Wrk}} {
			for i, x := range by.runs {
				row(w, name, by.name, fmt.Sprint(i+1), fmt.Sprintf("%.0f", x.RPS), fmtLat(x.P50), fmtLat(x.P99), fmt.Sprint(x.Failed), fmtCPU(x.CPU))
			}
		}
	}
}

func (r *report) failoverDetails(w io.Writer) {
	fmt.Fprintf(w, "\n## Failover scenarios (times from the start of the load)\n\n")
	fmt.Fprintln(w, "| proxy | fault | fault at | restart at | answered | cut at end | failover | failback | slowest answer ended at |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|")
	for _, x := range r.Failover {
		row(w, string(x.Proxy), string(x.Fault), fmtLat(x.FaultAt), fmtLat(x.RestartAt), fmt.Sprint(x.Total-x.Failed),
			fmt.Sprint(x.Cut), fmtDur(x.Failover), fmtDur(x.Failback), fmtLat(x.MaxAt))
	}
	fmt.Fprintf(w, "\nWho answered, one character per %v (M master, B backup, + both, x a failure, . nothing):\n\n```\n", timelineStep)
	for _, x := range r.Failover {
		fmt.Fprintf(w, "%-7s %-4s %s\n", x.Proxy, x.Fault, x.Timeline)
	}
	fmt.Fprintln(w, "```")
}

const method = `
## Method

- Everything runs on 127.0.0.1: two ` + "`tandem demoapp`" + ` backends (master, backup), ` + "`tandem gateway`" + `
  and ` + "`haproxy -db`" + ` with generated configs (see ` + "`bench/stack.go`" + `). The load generator is built in:
  N keep-alive clients, one connection each, GET /hello back to back, every latency recorded.
- Throughput: direct, tandem, HAProxy and nginx are measured in turn, Runs times, after a short
  warm-up each, first with the built-in load generator, then with wrk (` + "`wrk -t2 -c64 --latency`" + `, from
  Debian's package, installed by the bench like HAProxy and nginx); the table shows the median of each
  metric. nginx (Debian's package, 2 workers, keep-alive to the servers, the backup as ` + "`backup`" + `) is a
  throughput baseline only: without active health checks it has no place in the failover rows. With -tls (the default) tandem and HAProxy are
  measured over HTTPS too, in the same rounds: a self-signed ECDSA P-256 certificate, HTTP/1.1
  negotiated by ALPN, one TLS handshake per client connection, then keep-alive requests.
- Failover: fresh backends and proxy per scenario; the master is hurt at "fault at" while the
  clients run. Failed = non-2xx answer, transport error or client timeout. A request whose reused
  connection is closed before any byte of an answer is sent once more on a new connection (what
  browsers and Go's net/http do) and counted as replayed, not failed. "fault → first answer
  by backup" is the first response whose body says "hello from bench-backup". "restart → first answer
  by master" counts only requests sent after the restart (or SIGCONT), since a request parked on a
  stopped master is answered by it at SIGCONT whatever the proxy decided. Requests still in flight
  when the scenario ends are "cut", not failed.
- Same checks on both: GET /status expecting "version", interval 1s, 250ms while changing state
  and while down (HAProxy: fastinter and downinter), timeout 500ms (HAProxy: timeout check),
  rise 2, fall 2; 3 tries; connect timeout 2s; tandem per-try timeout 1s (HAProxy has none: a
  request sent to a stopped server waits for timeout server, 60s); tandem fails back with
  failback after 0s, like HAProxy.
`

// fmtCPU is a CPU time per request, in microseconds; empty when not
// measured.
func fmtCPU(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
}
