package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// soakOpts configures the soak.
type soakOpts struct {
	Length      time.Duration
	Every       time.Duration // sampling period
	SwitchEvery time.Duration // tandem switch to the backup / tandem failback, in turn
	ReloadEvery time.Duration // config rewritten and SIGHUP
}

// The soak's load: kept small enough that on two CPUs the gateway is busy
// but the sampler, the CLI and the checks still get their turn.
const (
	soakGETClients   = 4
	soakKeyClients   = 2 // POST /echo with Idempotency-Key: replayable
	soakPostClients  = 1 // POST /echo without: a failure there is allowed, and counted
	soakWSClients    = 4
	soakMaxPerClient = 50_000_000 // bound of requests per client
	soakMaxWSDials   = 10_000     // bound of websocket (re)connections per client
)

// soakSample is one look at the gateway.
type soakSample struct {
	At         time.Duration
	RSS        int64 // bytes, /proc/PID/status VmRSS
	HeapInuse  int64 // go_memstats_heap_inuse_bytes
	Goroutines int64 // go_goroutines
	FDs        int64 // process_open_fds, else /proc/PID/fd
	Requests   int64 // answered so far, all kinds
	Websockets int64 // open now, as the clients count them
}

// soakCount counts one kind of request.
type soakCount struct {
	Total, Failed, Cut atomic.Int64
	mu                 sync.Mutex
	why                map[string]int
}

func (c *soakCount) add(s sample, ok bool) {
	if s.outcome == outCut {
		c.Cut.Add(1)
		return
	}
	c.Total.Add(1)
	if ok {
		return
	}
	c.Failed.Add(1)
	c.mu.Lock()
	if c.why == nil {
		c.why = map[string]int{}
	}
	k := failureKind(s)
	if s.outcome == outOK {
		k = "wrong body"
	}
	c.why[k]++
	c.mu.Unlock()
}

func (c *soakCount) cell() string {
	s := fmt.Sprintf("%d of %d", c.Failed.Load(), c.Total.Load())
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.why) > 0 {
		s += " (" + summarize(c.why) + ")"
	}
	return s
}

// soakResult is what the soak measured.
type soakResult struct {
	Opts                       soakOpts
	Samples                    []soakSample
	GET, PostKey, Post         soakCount
	WSDials, WSDialFails       atomic.Int64
	WSMessages                 atomic.Int64
	wsMu                       sync.Mutex
	WSCloses                   map[string]int
	Switches, SwitchFails      int
	Reloads, ReloadFails       int
	History                    int // switches in tandem's history after the start
	OpErrors                   []string
	ReloadMetric, SwitchMetric string
	PID                        int
	StartedAt, EndedAt         time.Time
	LogWarn, LogError          int      // lines of the gateway's log at those levels
	LogMsgs                    []string // their distinct messages, with counts
	wsOpen                     atomic.Int64
}

// runSoak runs mixed load through tandem for o.Length with periodic
// switches and reloads, sampling the gateway's memory, goroutines and fds.
func runSoak(ctx context.Context, e *env, o soakOpts) (*soakResult, error) {
	b, err := e.startBackends(ctx)
	if err != nil {
		return nil, err
	}
	defer b.kill()
	knobs := tandemKnobs{Websocket: true}
	g, err := e.startProxyWith(ctx, kindTandem, b, proxySetup{tandem: knobs})
	if err != nil {
		return nil, err
	}
	defer g.kill()
	listen := strings.TrimPrefix(g.url, "http://")
	admin := strings.TrimPrefix(g.admin, "http://")

	r := &soakResult{Opts: o, WSCloses: map[string]int{}, PID: g.cmd.Process.Pid, StartedAt: time.Now()}
	t0 := time.Now()
	end := t0.Add(o.Length)
	// The load stops starting requests at end; those in flight get a grace.
	lctx, cancel := context.WithDeadline(ctx, end.Add(5*time.Second))
	defer cancel()

	// The first sample is the idle gateway, before any load.
	r.Samples = append(r.Samples, sampleGateway(ctx, g, r, t0))
	var wg sync.WaitGroup
	for range soakGETClients {
		wg.Go(func() { soakRequests(lctx, g.url+"/hello", end, o, &r.GET, nil) })
	}
	for i := range soakKeyClients {
		wg.Go(func() { soakRequests(lctx, g.url+"/echo", end, o, &r.PostKey, postWithKey(listen, i, true)) })
	}
	for i := range soakPostClients {
		wg.Go(func() { soakRequests(lctx, g.url+"/echo", end, o, &r.Post, postWithKey(listen, 100+i, false)) })
	}
	for range soakWSClients {
		wg.Go(func() { soakWebsocket(lctx, "ws://"+listen+"/websocket", end, r) })
	}

	// Operator actions and sampling run in this goroutine, in time order.
	sw := time.NewTicker(o.SwitchEvery)
	defer sw.Stop()
	rl := time.NewTicker(o.ReloadEvery)
	defer rl.Stop()
	sm := time.NewTicker(o.Every)
	defer sm.Stop()
	toBackup := true
	response := 60 * time.Second
	done := time.NewTimer(time.Until(end))
	defer done.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-done.C:
			break loop
		case <-sw.C:
			args := []string{"failback", "bench"}
			if toBackup {
				args = []string{"switch", "bench", backupName}
			}
			toBackup = !toBackup
			r.Switches++
			if out, err := exec.CommandContext(ctx, e.tandem, append(args, "--admin", g.admin)...).CombinedOutput(); err != nil {
				r.SwitchFails++
				r.OpErrors = append(r.OpErrors, fmt.Sprintf("%v tandem %s: %v: %s", time.Since(t0).Round(time.Second),
					strings.Join(args, " "), err, bytes.TrimSpace(out)))
			}
		case <-rl.C:
			// A changed value, so that the reload swaps a new table in
			// rather than finding nothing to do.
			if response == 60*time.Second {
				response = 61 * time.Second
			} else {
				response = 60 * time.Second
			}
			knobs.Response = response
			r.Reloads++
			if err := writeTandemConfig(g.cfg, listen, admin, b, knobs); err != nil {
				return nil, err
			}
			if err := g.signal(syscall.SIGHUP); err != nil {
				r.ReloadFails++
				r.OpErrors = append(r.OpErrors, fmt.Sprintf("%v reload: %v", time.Since(t0).Round(time.Second), err))
			}
		case <-sm.C:
			s := sampleGateway(ctx, g, r, t0)
			r.Samples = append(r.Samples, s)
			fmt.Fprintf(os.Stderr, "  %6s rss %s heap %s goroutines %d fds %d requests %d websockets %d failed GET %d POST+key %d\n",
				fmtAt(s.At), mib(s.RSS), mib(s.HeapInuse), s.Goroutines, s.FDs, s.Requests, s.Websockets,
				r.GET.Failed.Load(), r.PostKey.Failed.Load())
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("interrupted: %w", err)
	}
	// One last look once the load is over: what is left when idle.
	time.Sleep(2 * time.Second)
	r.Samples = append(r.Samples, sampleGateway(ctx, g, r, t0))
	r.EndedAt = time.Now()
	if err := alive(g.proc, b.master, b.backup); err != nil {
		return nil, err
	}
	if recs, err := tandemSwitches(ctx, e, g, t0); err == nil {
		r.History = len(recs)
	}
	if b, err := os.ReadFile(filepath.Join(e.dir, g.name+".log")); err == nil {
		r.readLog(b)
	}
	metrics, _ := scrape(ctx, g.admin+"/metrics")
	r.ReloadMetric = metricLines(metrics, "tandem_config_reloads_total")
	r.SwitchMetric = metricLines(metrics, "tandem_switches_total")
	return r, nil
}

// readLog counts the gateway's warnings and errors and keeps their messages:
// a soak that fails nothing may still complain, and that is worth reading.
func (r *soakResult) readLog(b []byte) {
	msgs := map[string]int{}
	for line := range strings.Lines(string(b)) {
		switch {
		case strings.Contains(line, "level=WARN"):
			r.LogWarn++
		case strings.Contains(line, "level=ERROR"):
			r.LogError++
		default:
			continue
		}
		msg := line
		if _, rest, ok := strings.Cut(line, "msg="); ok {
			msg = rest
			if rest[0] == '"' {
				if q, err := strconv.QuotedPrefix(rest); err == nil {
					msg, _ = strconv.Unquote(q)
				}
			} else {
				msg, _, _ = strings.Cut(rest, " ")
			}
		}
		msgs[strings.TrimSpace(msg)]++
	}
	if len(msgs) > 0 {
		r.LogMsgs = countList(msgs)
	}
}

// postWithKey returns a request builder for POST /echo: each request has a
// body of its own and, with key, an Idempotency-Key of its own.
func postWithKey(host string, client int, key bool) func(i int) (req, body []byte) {
	return func(i int) ([]byte, []byte) {
		body := fmt.Appendf(nil, "soak client %d request %d", client, i)
		var h bytes.Buffer
		fmt.Fprintf(&h, "POST /echo HTTP/1.1\r\nHost: %s\r\nUser-Agent: tandem-bench\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n", host, len(body))
		if key {
			fmt.Fprintf(&h, "Idempotency-Key: soak-%d-%d\r\n", client, i)
		}
		h.WriteString("\r\n")
		h.Write(body)
		return h.Bytes(), body
	}
}

// soakRequests is one client: GET url back to back, or the requests build
// makes; bounded by end and soakMaxPerClient. A POST counts as served only
// if the answer echoes its own body.
func soakRequests(ctx context.Context, url string, end time.Time, o soakOpts, c *soakCount, build func(int) ([]byte, []byte)) {
	cl, err := newRawClient(ctx, url, 10*time.Second)
	if err != nil {
		c.add(sample{outcome: outTransport, why: "bad url"}, false)
		return
	}
	defer cl.close()
	for i := range soakMaxPerClient {
		if time.Now().After(end) || ctx.Err() != nil {
			return
		}
		var body []byte
		if build != nil {
			cl.req, body = build(i)
		}
		s := cl.get(ctx)
		ok := s.outcome == outOK
		if ok && body != nil {
			ok = bytes.HasSuffix(cl.buf.Bytes(), body)
		}
		c.add(s, ok)
	}
}

// soakWebsocket keeps one websocket open, reconnecting whenever the gateway
// closes it (1012 on a switch), and counts what it sees.
func soakWebsocket(ctx context.Context, url string, end time.Time, r *soakResult) {
	// One transport, whose idle connections close after a refused
	// handshake: a transport per dial left each refused one open, and the
	// gateway's fds grew with them while both servers were down.
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for range soakMaxWSDials {
		if time.Now().After(end) || ctx.Err() != nil {
			return
		}
		r.WSDials.Add(1)
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPClient: client})
		cancel()
		if err != nil {
			tr.CloseIdleConnections()
			r.WSDialFails.Add(1)
			r.wsClose("dial: " + errorKind(err))
			sleepUntil(ctx, time.Now().Add(200*time.Millisecond))
			continue
		}
		r.wsOpen.Add(1)
		rctx, stop := context.WithDeadline(ctx, end)
		for {
			_, _, err = c.Read(rctx)
			if err != nil {
				break
			}
			r.WSMessages.Add(1)
		}
		stop()
		r.wsOpen.Add(-1)
		switch code := websocket.CloseStatus(err); {
		case code != -1:
			r.wsClose(fmt.Sprintf("close %d", code))
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			r.wsClose("end of soak")
		default:
			r.wsClose("error: " + errorKind(err))
		}
		c.CloseNow()
	}
}

func (r *soakResult) wsClose(why string) {
	r.wsMu.Lock()
	r.WSCloses[why]++
	r.wsMu.Unlock()
}

// sampleGateway reads the gateway's RSS from /proc and the rest from its
// metrics; a figure it cannot read stays -1.
func sampleGateway(ctx context.Context, g *gateway, r *soakResult, t0 time.Time) soakSample {
	s := soakSample{At: time.Since(t0), RSS: -1, HeapInuse: -1, Goroutines: -1, FDs: -1}
	pid := g.cmd.Process.Pid
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				s.RSS = kb << 10
			}
		}
	}
	if m, err := scrape(ctx, g.admin+"/metrics"); err == nil {
		s.HeapInuse = metricValue(m, "go_memstats_heap_inuse_bytes")
		s.Goroutines = metricValue(m, "go_goroutines")
		s.FDs = metricValue(m, "process_open_fds")
	}
	if s.FDs < 0 {
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
			s.FDs = int64(len(ents))
		}
	}
	s.Requests = r.GET.Total.Load() + r.PostKey.Total.Load() + r.Post.Total.Load()
	s.Websockets = r.wsOpen.Load()
	return s
}

// scrape fetches a Prometheus text page.
func scrape(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("scrape: %w", err)
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return "", fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return "", fmt.Errorf("scrape %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	return string(b), nil
}

// metricValue is the value of an unlabelled sample, or -1.
func metricValue(page, name string) int64 {
	sc := bufio.NewScanner(strings.NewReader(page))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return -1
			}
			return int64(f)
		}
	}
	return -1
}

// metricLines returns the samples of a labelled metric, joined.
func metricLines(page, name string) string {
	var out []string
	for line := range strings.Lines(page) {
		if strings.HasPrefix(line, name+"{") {
			out = append(out, strings.TrimSpace(strings.TrimPrefix(line, name)))
		}
	}
	return strings.Join(out, "; ")
}

func mib(b int64) string {
	if b < 0 {
		return "?"
	}
	return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
}

// failedReplayable is what must be zero: GETs and POSTs with an
// Idempotency-Key that failed.
func (r *soakResult) failedReplayable() int64 { return r.GET.Failed.Load() + r.PostKey.Failed.Load() }

// loaded are the samples taken while the load ran (not the idle last one).
func (r *soakResult) loaded() []soakSample {
	if len(r.Samples) < 2 {
		return r.Samples
	}
	return r.Samples[:len(r.Samples)-1]
}

// series summarises one figure: first sample (idle, before the load),
// first and last under load, maximum, and idle after the load.
func (r *soakResult) series(get func(soakSample) int64, format func(int64) string) []string {
	ld := r.loaded()
	if len(ld) == 0 {
		return []string{"?", "?", "?", "?", "?"}
	}
	firstLoaded := ld[min(1, len(ld)-1)]
	mx := ld[0]
	for _, s := range r.Samples {
		if get(s) > get(mx) {
			mx = s
		}
	}
	return []string{format(get(ld[0])), format(get(firstLoaded)), format(get(ld[len(ld)-1])),
		format(get(mx)) + " at " + fmtAt(mx.At), format(get(r.Samples[len(r.Samples)-1]))}
}

func (r *report) soakTable(w io.Writer) {
	s := r.Soak
	verdict := "ok"
	if s.failedReplayable() != 0 {
		verdict = "FAILED: must be 0"
	}
	fmt.Fprintf(w, "| soak through tandem, %v | |\n|---|--:|\n", s.Opts.Length)
	row(w, "GET /hello failed", s.GET.cell())
	row(w, "POST /echo with Idempotency-Key failed (wrong echo counts)", s.PostKey.cell())
	row(w, "**failed replayable requests**", fmt.Sprintf("**%d** (%s)", s.failedReplayable(), verdict))
	row(w, "POST /echo without Idempotency-Key failed (may fail; not replayable)", s.Post.cell())
	row(w, "requests cut by the end of the soak (not counted)", fmt.Sprint(s.GET.Cut.Load()+s.PostKey.Cut.Load()+s.Post.Cut.Load()))
	s.wsMu.Lock()
	row(w, "websocket connections (dials failed)", fmt.Sprintf("%d (%d)", s.WSDials.Load(), s.WSDialFails.Load()))
	row(w, "websocket ends by reason", summarize(s.WSCloses))
	s.wsMu.Unlock()
	row(w, "websocket messages received", fmt.Sprint(s.WSMessages.Load()))
	row(w, fmt.Sprintf("operator switches, every %v (refused)", s.Opts.SwitchEvery), fmt.Sprintf("%d (%d)", s.Switches, s.SwitchFails))
	row(w, "switches in tandem history", fmt.Sprint(s.History))
	row(w, fmt.Sprintf("reloads by SIGHUP, every %v (failed to signal)", s.Opts.ReloadEvery), fmt.Sprintf("%d (%d)", s.Reloads, s.ReloadFails))
	row(w, "tandem_config_reloads_total", s.ReloadMetric)
	row(w, "tandem_switches_total", s.SwitchMetric)
	row(w, "gateway log lines at WARN / ERROR", fmt.Sprintf("%d / %d", s.LogWarn, s.LogError))
	if len(s.LogMsgs) > 0 {
		row(w, "their messages", strings.Join(s.LogMsgs, "; "))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| gateway | at start (idle) | first under load | last under load | max | idle after |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|")
	num := func(v int64) string {
		if v < 0 {
			return "?"
		}
		return fmt.Sprint(v)
	}
	row(w, append([]string{"RSS"}, s.series(func(x soakSample) int64 { return x.RSS }, mib)...)...)
	row(w, append([]string{"heap in use"}, s.series(func(x soakSample) int64 { return x.HeapInuse }, mib)...)...)
	row(w, append([]string{"goroutines"}, s.series(func(x soakSample) int64 { return x.Goroutines }, num)...)...)
	row(w, append([]string{"open fds"}, s.series(func(x soakSample) int64 { return x.FDs }, num)...)...)
}

func (r *report) soakMarkdown(w io.Writer) {
	s := r.Soak
	fmt.Fprintln(w, markSoak)
	fmt.Fprintf(w, "# Soak: mixed load through tandem with switches and reloads\n\n")
	r.context(w)
	fmt.Fprintf(w, "Load for %v: %d clients GET /hello, %d clients POST /echo with an Idempotency-Key of their own "+
		"per request, %d POST /echo without one (each back to back on a keep-alive connection; a POST counts as "+
		"served only if the answer echoes its own body), %d websocket clients on /websocket that reconnect "+
		"whenever the gateway closes them. Every %v `tandem switch bench %s` and `tandem failback bench` in "+
		"turn; every %v the config is rewritten (timeouts.response 60s ↔ 61s) and the gateway gets SIGHUP. "+
		"Every %v the bench reads VmRSS from /proc/PID/status and go_memstats_heap_inuse_bytes, go_goroutines "+
		"and process_open_fds from the admin API's /metrics. The gateway runs with its default GOGC (400).\n\n",
		s.Opts.Length, soakGETClients, soakKeyClients, soakPostClients, soakWSClients, s.Opts.SwitchEvery, backupName,
		s.Opts.ReloadEvery, s.Opts.Every)
	r.soakTable(w)
	fmt.Fprintf(w, "\nEvery sample (the last one 2s after the load stopped):\n\n")
	fmt.Fprintln(w, "| at | RSS | heap in use | goroutines | open fds | requests answered | websockets open |")
	fmt.Fprintln(w, "|--:|--:|--:|--:|--:|--:|--:|")
	for _, x := range s.Samples {
		row(w, fmtAt(x.At), mib(x.RSS), mib(x.HeapInuse), fmt.Sprint(x.Goroutines), fmt.Sprint(x.FDs),
			fmt.Sprint(x.Requests), fmt.Sprint(x.Websockets))
	}
	if len(s.OpErrors) > 0 {
		fmt.Fprintf(w, "\nOperator actions that failed:\n\n")
		for _, e := range s.OpErrors {
			fmt.Fprintf(w, "- %s\n", e)
		}
	}
}
