package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/metrics"
)

func healthCfg(mod func(*config.Health)) config.Health {
	h := config.Health{Method: "GET", Path: "/status", Expect: config.Expect{Status: config.StatusSet{{Lo: 200, Hi: 299}}},
		Interval: config.Duration(50 * time.Millisecond), FastInterval: config.Duration(20 * time.Millisecond),
		Timeout: config.Duration(100 * time.Millisecond), Rise: 2, Fall: 2}
	if mod != nil {
		mod(&h)
	}
	return h
}

func TestCheckDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/status":
			fmt.Fprint(w, `{"version":"1.2.3"}`)
		case "/teapot":
			w.WriteHeader(418)
			fmt.Fprint(w, "version but a teapot")
		case "/host":
			fmt.Fprint(w, "host="+r.Host)
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		case "/method":
			fmt.Fprint(w, r.Method)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	closed := "127.0.0.1:1"

	cases := []struct {
		name   string
		addr   string
		mod    func(*config.Health)
		ok     bool
		detail string
	}{
		{"status and body", srv.Listener.Addr().String(), func(h *config.Health) { h.Expect.Body = "version" }, true, "1.2.3"},
		{"body missing", srv.Listener.Addr().String(), func(h *config.Health) { h.Expect.Body = "ready" }, false, `does not contain "ready"`},
		{"body regexp", srv.Listener.Addr().String(), func(h *config.Health) { h.Expect.BodyRegexp = `"version":"1\.\d+` }, true, ""},
		{"body regexp mismatch", srv.Listener.Addr().String(), func(h *config.Health) { h.Expect.BodyRegexp = `^2\.` }, false, "does not match"},
		{"status not expected", srv.Listener.Addr().String(), func(h *config.Health) { h.Path = "/teapot" }, false, "status 418 not expected"},
		{"status in a list", srv.Listener.Addr().String(), func(h *config.Health) {
			h.Path = "/teapot"
			h.Expect.Status = config.StatusSet{{Lo: 200, Hi: 200}, {Lo: 400, Hi: 499}}
		}, true, ""},
		{"check port differs from traffic port", closed, func(h *config.Health) { h.Port = p }, true, ""},
		{"refused", closed, nil, false, "connection refused"},
		{"timeout", srv.Listener.Addr().String(), func(h *config.Health) { h.Path = "/slow" }, false, "timeout"},
		{"host header", srv.Listener.Addr().String(), func(h *config.Health) {
			h.Path, h.Host, h.Expect.Body = "/host", "app.example", "host=app.example"
		}, true, ""},
		{"method", srv.Listener.Addr().String(), func(h *config.Health) { h.Path, h.Method, h.Expect.Body = "/method", "HEAD", "" }, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCheck(healthCfg(tc.mod), tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			res := c.Do(context.Background())
			if res.OK != tc.ok || !strings.Contains(res.Detail, tc.detail) {
				t.Errorf("ok=%v detail=%q, want ok=%v detail containing %q", res.OK, res.Detail, tc.ok, tc.detail)
			}
		})
	}
}

// TestManager: probers take a failing server down after fall checks, bring
// it back after rise, and check the server once before Sync returns.
func TestManager(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	var transitions atomic.Int32
	reg := backend.NewRegistry(func(backend.Transition) { transitions.Add(1) })
	s := reg.Get(backend.Key{Group: "g", Name: "a", Address: srv.Listener.Addr().String()})
	m := NewManager(slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer m.Stop()
	if err := m.Sync(ctx, []Target{{Server: s, Health: healthCfg(nil)}}); err != nil {
		t.Fatal(err)
	}
	if s.State() != backend.Up {
		t.Fatalf("after Sync the server is %v, want up from its first check", s.State())
	}
	healthy.Store(false)
	if !waitState(s, backend.Down, time.Second) {
		t.Fatal("server not taken down")
	}
	healthy.Store(true)
	if !waitState(s, backend.Up, time.Second) {
		t.Fatal("server not brought back")
	}
	if n := transitions.Load(); n != 3 {
		t.Errorf("%d transitions published, want 3 (unknown->up, up->down, down->up)", n)
	}
	// A passive MarkDown is confirmed or undone by the checks; Kick makes
	// that happen at once even with a long interval.
	slow := healthCfg(func(h *config.Health) {
		h.Interval = config.Duration(time.Hour)
		h.FastInterval = config.Duration(20 * time.Millisecond)
	})
	if err := m.Sync(ctx, []Target{{Server: s, Health: slow}}); err != nil {
		t.Fatal(err)
	}
	s.MarkDown("test")
	for i := 0; i < 2 && s.State() == backend.Down; i++ {
		s.Kick()
		time.Sleep(50 * time.Millisecond)
	}
	if !waitState(s, backend.Up, time.Second) {
		t.Error("kicked checks did not bring the server back")
	}
	// Removing the target stops its prober.
	if err := m.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if len(m.run) != 0 {
		t.Errorf("%d probers still run after their servers were removed", len(m.run))
	}
}

func waitState(s *backend.Server, want backend.State, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if s.State() == want {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// TestKicksKeepChecksApart: a burst of kicks (every failed request kicks)
// does not squeeze `rise` checks into a few milliseconds.
func TestKicksKeepChecksApart(t *testing.T) {
	var checks []time.Time
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		checks = append(checks, time.Now())
		mu.Unlock()
	}))
	defer srv.Close()
	reg := backend.NewRegistry(nil)
	s := reg.Get(backend.Key{Group: "g", Name: "a", Address: srv.Listener.Addr().String()})
	m := NewManager(slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
	defer m.Stop()
	fast := 100 * time.Millisecond
	h := healthCfg(func(h *config.Health) {
		h.Interval = config.Duration(time.Hour)
		h.FastInterval = config.Duration(fast)
	})
	if err := m.Sync(context.Background(), []Target{{Server: s, Health: h}}); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		s.Kick()
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(fast)
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(checks); i++ {
		if d := checks[i].Sub(checks[i-1]); d < fast-10*time.Millisecond {
			t.Errorf("checks %d and %d only %v apart, want at least the fast interval %v", i-1, i, d, fast)
		}
	}
	if len(checks) < 3 {
		t.Errorf("%d checks in 350ms of kicks, want kicks to be served", len(checks))
	}
}

// TestCheckPanicCostsOneCheck: a panic inside a check is recovered, counted,
// and the prober goes on checking, so the server's health never freezes.
func TestCheckPanicCostsOneCheck(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	reg := backend.NewRegistry(nil)
	s := reg.Get(backend.Key{Group: "g", Name: "a", Address: srv.Listener.Addr().String()})
	m := NewManager(slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer m.Stop()
	var calls atomic.Int32
	role := func() string {
		// Every other check panics, the first one included.
		if calls.Add(1)%2 == 1 {
			panic("a bug in one check")
		}
		return "active"
	}
	if err := m.Sync(ctx, []Target{{Server: s, Health: healthCfg(nil), Role: role}}); err != nil {
		t.Fatal(err)
	}
	healthy.Store(false)
	if !waitState(s, backend.Down, 2*time.Second) {
		t.Fatalf("the server was not taken down after panicking checks (%d checks ran): the prober stopped", calls.Load())
	}
	healthy.Store(true)
	if !waitState(s, backend.Up, 2*time.Second) {
		t.Fatal("the server was not brought back: the prober stopped")
	}
}

// TestAnswerWatch: a check's timeout that finds the answer's head already
// read waits once more, then ends the check; with no answer it ends it at
// once.
func TestAnswerWatch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		head    bool
		aborted []bool // after each expiry
	}{
		{"no answer", false, []bool{true}},
		{"head read", true, []bool{false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, abort := context.WithCancelCause(context.Background())
			defer abort(nil)
			w := &answerWatch{start: time.Now(), timeout: time.Hour, abort: abort, connected: 0, wrote: -1, head: -1}
			w.wroteRequest(httptrace.WroteRequestInfo{})
			defer w.stop()
			if tc.head {
				w.gotHead()
			}
			for i, want := range tc.aborted {
				w.expire()
				if got := errors.Is(context.Cause(ctx), errCheckTimeout); got != want {
					t.Fatalf("expiry %d: aborted %v, want %v", i+1, got, want)
				}
			}
			if !strings.HasPrefix(w.describe(), "timeout: connected in ") {
				t.Errorf("detail %q does not say how far the check got", w.describe())
			}
		})
	}
}

// TestConnected: a socket the kernel connected says so, which lets a
// check's dial that ran out of time while its goroutine was starved go on.
func TestConnected(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := dialWithin(time.Second)(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if !connected(rc) {
		t.Error("an established connection is not connected")
	}
	c.Close()
	if connected(rc) {
		t.Error("a closed connection is still connected")
	}
	if _, err := dialWithin(time.Second)(context.Background(), "tcp", "127.0.0.1:1"); err == nil || errors.Is(err, errDialTimeout) {
		t.Errorf("dial to a closed port: %v, want refused", err)
	}
}

// TestExpireAfterFirstRead: the timer that fires after the Transport read
// the answer's first bytes, but before it reported them (the socket is
// empty, no head yet), waits once more instead of ending the check (a
// race TestStarvedChecks showed once in a loaded run).
func TestExpireAfterFirstRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("HTTP/1.1 200 OK\r\n"))
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	c, err := dialWithin(time.Second)(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var buf [64]byte
	if _, err := c.Read(buf[:]); err != nil { // the socket is empty now
		t.Fatal(err)
	}
	aborted := false
	w := &answerWatch{start: time.Now(), timeout: time.Hour, abort: func(error) { aborted = true }, connected: 0, wrote: 0, head: -1, conn: c}
	w.timer = time.NewTimer(time.Hour)
	w.expire()
	if aborted || !w.extended {
		t.Fatalf("a timer after the first bytes were read ended the check (extended %v)", w.extended)
	}
}
