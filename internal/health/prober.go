// Package health runs the active checks of every server and publishes what
// they find through the server's state (backend.Server.ReportCheck).
package health

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
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
		Timeout: g.Timeout.D(),
		// A new connection per check: a check must see what a new client
		// sees (a frozen process still accepts on a kept-alive socket's peer).
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil,
			DialContext: (&net.Dialer{Timeout: g.Timeout.D()}).DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// Do runs the check once.
func (c *Check) Do(ctx context.Context) backend.CheckResult {
	start := time.Now()
	res := backend.CheckResult{At: start}
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
		res.Detail = describe(err)
		res.Reason = reasonOf(res.Detail)
		if backend.LocalError(err) {
			res.Reason = ReasonLocal
		}
		return res
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	res.Latency = time.Since(start)
	res.Status = resp.StatusCode
	switch {
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
	defer func() {
		if r := recover(); r != nil {
			log.Error("health prober panicked", "group", s.Group, "server", s.Name, "panic", r)
		}
	}()
	var last time.Time
	check := func() {
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
