// Package health runs the active checks of every server and publishes what
// they find through the server's state (backend.Server.ReportCheck).
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/metrics"
)

// maxBody bounds how much of a check's body is read and matched.
const maxBody = 64 << 10

// Check is one server's compiled health check.
type Check struct {
	URL    string
	Method string
	Host   string
	Cfg    config.Health
	// Role, if set, tells the server its role with each check (header
	// X-Tandem-Role, read by appkit): the gateway's own word, heard even
	// by a server that gets no traffic.
	Role   func() string
	re     *regexp.Regexp
	client *http.Client
}

// NewCheck compiles the check of group config g for a server at address.
func NewCheck(g config.Health, address string) (*Check, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("health check address %q: %w", address, err)
	}
	if g.Port != 0 {
		port = strconv.Itoa(g.Port)
	}
	c := &Check{URL: "http://" + net.JoinHostPort(host, port) + g.Path, Method: g.Method, Host: g.Host, Cfg: g}
	if g.Expect.BodyRegexp != "" {
		if c.re, err = regexp.Compile(g.Expect.BodyRegexp); err != nil {
			return nil, fmt.Errorf("health check body regexp: %w", err)
		}
	}
	c.client = &http.Client{
		// No Client.Timeout: Do bounds the connection and the answer
		// apart (answerWatch).
		// A new connection per check: a check must see what a new client
		// sees (a frozen process still accepts on a kept-alive socket's peer).
		Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil, DialContext: dialWithin(g.Timeout.D())},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// errCheckTimeout is the cause of a check ended by its timeout.
var errCheckTimeout = errors.New("timeout")

// dialTimeout is the error of a check's dial that its timeout ended.
type dialTimeout struct{}

func (dialTimeout) Error() string   { return "dial: timeout" }
func (dialTimeout) Timeout() bool   { return true }
func (dialTimeout) Temporary() bool { return true }

var errDialTimeout error = dialTimeout{}

// dialWithin dials a check's connection within timeout, unless by then
// the kernel has connected it and only the gateway's goroutine, starved,
// has not seen it yet (the dial then goes on, within the check's
// backstop): a server that accepted in time is not late.
func dialWithin(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var mu sync.Mutex
		var raw syscall.RawConn
		d := net.Dialer{ControlContext: func(_ context.Context, _, _ string, rc syscall.RawConn) error {
			mu.Lock()
			raw = rc
			mu.Unlock()
			return nil
		}}
		dctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		t := time.AfterFunc(timeout, func() {
			mu.Lock()
			rc := raw
			mu.Unlock()
			if rc == nil || !connected(rc) {
				cancel(errDialTimeout)
			}
		})
		defer t.Stop()
		c, err := d.DialContext(dctx, network, addr)
		if err != nil && errors.Is(context.Cause(dctx), errDialTimeout) {
			return nil, errDialTimeout
		}
		if err != nil {
			return nil, err
		}
		return &markConn{Conn: c}, nil
	}
}

// markConn notes that bytes of the answer came: the Transport reads them
// before it says so (GotFirstResponseByte follows its read), and a timer
// firing in between would find the socket empty and no head yet.
type markConn struct {
	net.Conn
	read atomic.Bool
}

func (c *markConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.read.Store(true)
	}
	return n, err
}

// SyscallConn reaches the socket, for unread.
func (c *markConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// answered reports whether bytes of an answer came on c.
func answered(c net.Conn) bool {
	mc, ok := c.(*markConn)
	return ok && mc.read.Load()
}

// Do runs the check once. The timeout bounds the connection (the dial)
// and, from the moment the request was written, the answer: the time the
// gateway's own goroutines waited to run before that is not the server's
// (issue 9 item 7: a reconnect storm on two cores starved the checks).
// A timeout that finds the answer already there (its head read, or bytes
// waiting unread in the socket: the gateway was too busy to read them)
// waits once more, as the server did answer in time. A backstop of three
// timeouts bounds the whole check.
func (c *Check) Do(ctx context.Context) backend.CheckResult {
	start := time.Now()
	res := backend.CheckResult{At: start}
	to := c.Cfg.Timeout.D()
	ctx, cancel := context.WithTimeoutCause(ctx, 3*to, errCheckTimeout)
	defer cancel()
	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	w := &answerWatch{start: start, timeout: to, abort: abort, connected: -1, wrote: -1, head: -1}
	defer w.stop()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn:              w.gotConn,
		WroteRequest:         w.wroteRequest,
		GotFirstResponseByte: w.gotHead,
	})
	timedOut := func(err error) bool {
		if errors.Is(context.Cause(ctx), errCheckTimeout) {
			res.Reason, res.Detail = "timeout", w.describe()
			return true
		}
		return false
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, c.URL, nil)
	if err != nil {
		res.Reason, res.Detail = "error", err.Error()
		return res
	}
	if c.Host != "" {
		req.Host = c.Host
	}
	req.Header.Set("User-Agent", "tandem-health-check")
	if c.Role != nil {
		req.Header.Set("X-Tandem-Role", c.Role())
	}
	resp, err := c.client.Do(req)
	if err != nil {
		res.Latency = time.Since(start)
		if timedOut(err) {
			return res
		}
		res.Detail = describe(err)
		res.Reason = reasonOf(res.Detail)
		if errors.Is(err, errDialTimeout) {
			res.Reason = "timeout"
		}
		if res.Reason == "timeout" && w.phase() == "" {
			res.Detail = w.describe() // no connection within the timeout
		}
		if backend.LocalError(err) {
			res.Reason = ReasonLocal
		}
		return res
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	w.stop()
	res.Latency = time.Since(start)
	res.Status = resp.StatusCode
	switch {
	case err != nil && timedOut(err):
		res.Detail = "reading body: " + res.Detail
	case err != nil:
		res.Detail = "reading body: " + describe(err)
		res.Reason = reasonOf(describe(err))
	case !c.Cfg.Expect.Status.Contains(resp.StatusCode):
		res.Reason, res.Detail = "status", fmt.Sprintf("status %d not expected", resp.StatusCode)
	case c.Cfg.Expect.Body != "" && !strings.Contains(string(body), c.Cfg.Expect.Body):
		res.Reason, res.Detail = "body", fmt.Sprintf("body does not contain %q: %q", c.Cfg.Expect.Body, excerpt(body))
	case c.re != nil && !c.re.Match(body):
		res.Reason, res.Detail = "body", fmt.Sprintf("body does not match %q: %q", c.re.String(), excerpt(body))
	default:
		res.OK = true
		res.Detail = excerpt(body)
	}
	return res
}

// answerWatch times one check's phases (httptrace) and bounds its wait
// for an answer from the moment the request was written.
type answerWatch struct {
	start   time.Time
	timeout time.Duration
	abort   context.CancelCauseFunc

	mu                     sync.Mutex
	conn                   net.Conn
	connected, wrote, head time.Duration // since start; -1: not yet
	timer                  *time.Timer
	extended, done         bool
}

func (w *answerWatch) gotConn(i httptrace.GotConnInfo) {
	w.mu.Lock()
	w.conn, w.connected = i.Conn, time.Since(w.start)
	w.mu.Unlock()
}

// wroteRequest starts the wait for the answer.
func (w *answerWatch) wroteRequest(httptrace.WroteRequestInfo) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wrote = time.Since(w.start)
	if !w.done && w.timer == nil {
		w.timer = time.AfterFunc(w.timeout, w.expire)
	}
}

func (w *answerWatch) gotHead() {
	w.mu.Lock()
	w.head = time.Since(w.start)
	w.mu.Unlock()
}

// expire ends the check, unless the answer is already there: then it
// waits once more for the gateway to read it.
func (w *answerWatch) expire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	if !w.extended && (w.head >= 0 || answered(w.conn) || unread(w.conn) > 0) {
		w.extended = true
		w.timer.Reset(w.timeout)
		return
	}
	w.done = true
	w.abort(errCheckTimeout)
}

// stop ends the watch: the answer is read, or the check is over.
func (w *answerWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	if w.timer != nil {
		w.timer.Stop()
	}
}

// phase says how far the check got, "" if not connected.
func (w *answerWatch) phase() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	switch {
	case w.connected < 0:
		return ""
	case w.wrote < 0:
		return "connected in " + ms(w.connected) + ", request not written"
	case w.head < 0:
		return "connected in " + ms(w.connected) + ", request written at " + ms(w.wrote) + ", no answer"
	}
	return "connected in " + ms(w.connected) + ", request written at " + ms(w.wrote) + ", head at " + ms(w.head) + ", body unfinished"
}

// describe is the detail of a check ended by its timeout.
func (w *answerWatch) describe() string {
	if p := w.phase(); p != "" {
		return "timeout: " + p + " within " + w.timeout.String()
	}
	return "timeout: no connection within " + w.timeout.String()
}

func excerpt(b []byte) string {
	const n = 120
	s := strings.ToValidUTF8(string(b), "?")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// describe shortens transport errors to what an operator needs.
func describe(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	case strings.Contains(err.Error(), "connection reset"):
		return "connection reset"
	case asNetTimeout(err, &ne):
		return "timeout"
	}
	return err.Error()
}

func asNetTimeout(err error, ne *net.Error) bool {
	if e, ok := err.(net.Error); ok && e.Timeout() {
		*ne = e
		return true
	}
	return strings.Contains(err.Error(), "Client.Timeout") || strings.Contains(err.Error(), "deadline exceeded")
}

// ReasonLocal is the reason of a check that failed for the gateway's own
// shortage (out of fds, buffers, ports): it says nothing of the server.
const ReasonLocal = "local"

// reasonOf classifies a described transport error for metrics labels.
func reasonOf(detail string) string {
	switch detail {
	case "connection refused":
		return "refused"
	case "connection reset":
		return "reset"
	case "timeout":
		return "timeout"
	}
	return "error"
}

// Manager runs one prober goroutine per server and replaces them on reload.
type Manager struct {
	log *slog.Logger
	m   *metrics.Metrics
	mu  sync.Mutex
	run map[*backend.Server]*prober
}

type prober struct {
	cfg    config.Health
	cancel context.CancelFunc
	done   chan struct{}
}

// NewManager returns a manager with no probers, recording into m.
func NewManager(log *slog.Logger, m *metrics.Metrics) *Manager {
	return &Manager{log: log, m: m, run: map[*backend.Server]*prober{}}
}

// Target is a server with the health check of its group.
type Target struct {
	Server *backend.Server
	Health config.Health
	Role   func() string // see Check.Role
}

// Sync makes the running probers match targets: new servers get one, a
// changed check restarts it, removed servers' probers stop. Servers probed
// for the first time are checked once before Sync returns, so the first
// routing decision is an informed one.
func (m *Manager) Sync(ctx context.Context, targets []Target) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := map[*backend.Server]bool{}
	var first sync.WaitGroup
	for _, t := range targets {
		keep[t.Server] = true
		if p, ok := m.run[t.Server]; ok && sameHealth(p.cfg, t.Health) {
			continue
		}
		if p, ok := m.run[t.Server]; ok {
			p.stop()
		}
		if t.Health.Disabled {
			delete(m.run, t.Server)
			continue
		}
		check, err := NewCheck(t.Health, t.Server.Address)
		if err != nil {
			return fmt.Errorf("server %s/%s: %w", t.Server.Group, t.Server.Name, err)
		}
		check.Role = t.Role
		pctx, cancel := context.WithCancel(ctx)
		p := &prober{cfg: t.Health, cancel: cancel, done: make(chan struct{})}
		m.run[t.Server] = p
		initial := t.Server.State() == backend.Unknown
		if initial {
			first.Add(1)
		}
		go p.loop(pctx, m.log, m.m, t.Server, check, initial, &first)
	}
	for s, p := range m.run {
		if !keep[s] {
			p.stop()
			delete(m.run, s)
		}
	}
	first.Wait()
	return nil
}

// Stop stops every prober.
func (m *Manager) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for s, p := range m.run {
		p.stop()
		delete(m.run, s)
	}
}

func (p *prober) stop() {
	p.cancel()
	<-p.done
}

func sameHealth(a, b config.Health) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// loop checks the server until ctx ends: at the steady interval while it is
// stable, at the fast interval while it is down or its checks disagree with
// its state, and at once when passive detection kicks it.
func (p *prober) loop(ctx context.Context, log *slog.Logger, m *metrics.Metrics, s *backend.Server, c *Check, initial bool, first *sync.WaitGroup) {
	defer close(p.done)
	firstDone := func() {}
	if initial {
		firstDone = sync.OnceFunc(first.Done)
	}
	defer firstDone()
	var last time.Time
	check := func() {
		// A panic costs one check, never the prober (as Caddy's active
		// health checker): a prober that ended would freeze the server's
		// health for good. The check counts for nothing either way.
		defer func() {
			if r := recover(); r != nil {
				m.CheckFailures.WithLabelValues(s.Group, s.Name, "panic").Inc()
				log.Error("health check panicked; the next one runs as usual", "group", s.Group, "server", s.Name,
					"panic", r, "stack", string(debug.Stack()))
			}
		}()
		last = time.Now()
		res := c.Do(ctx)
		if ctx.Err() != nil {
			return
		}
		m.CheckDuration.WithLabelValues(s.Group, s.Name).Observe(res.Latency.Seconds())
		if !res.OK {
			m.CheckFailures.WithLabelValues(s.Group, s.Name, res.Reason).Inc()
		}
		if res.Reason == ReasonLocal {
			// Not the server's fault: the check does not count either way.
			log.Warn("health check could not run: the gateway is short of its own resources", "group", s.Group,
				"server", s.Name, "error", res.Detail)
			return
		}
		s.ReportCheck(res, c.Cfg.Rise, c.Cfg.Fall)
	}
	check()
	firstDone()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		next := c.Cfg.Interval.D()
		if s.Changing() {
			next = c.Cfg.FastInterval.D()
		}
		t.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.Kicked():
			// A kick asks for a check now, but checks stay at least the
			// fast interval apart: a burst of kicks must not turn `rise`
			// passes into a few milliseconds' worth.
			if wait := c.Cfg.FastInterval.D() - time.Since(last); wait > 0 {
				t.Reset(wait)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}
		check()
	}
}
