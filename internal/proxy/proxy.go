// Package proxy forwards requests to the server the routing table picks:
// retries what is safe to replay, upgrades websockets and tracks them.
package proxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/metrics"
	"github.com/tandemproxy/tandem/internal/route"
	"github.com/tandemproxy/tandem/internal/upstream"
)

var errNoServer = route.ErrNoServer

// Proxy is the gateway's request handler.
type Proxy struct {
	table   func() *route.Table
	log     *slog.Logger
	metrics *metrics.Metrics
	// up makes each exchange with a server: the engine's client.
	up     exchanger
	dialer *net.Dialer
	// stalled is onStall, made once (a method value allocates).
	stalled func(*backend.Server, time.Duration, int)

	// upgraded tracks every websocket, for shutdown.
	upgraded backend.Conns
	failLog  logLimiter
	wsWait   sync.WaitGroup
}

// New returns a proxy routing with the table that table returns at each
// request, talking to the servers with engine's client (config.Engine*:
// tandem's own, or net/http's Transport).
func New(table func() *route.Table, log *slog.Logger, m *metrics.Metrics, engine string) *Proxy {
	p := &Proxy{table: table, log: log, metrics: m, dialer: &net.Dialer{KeepAlive: 30 * time.Second}}
	p.stalled = p.onStall
	if engine == config.EngineNetHTTP {
		p.up = newNetHTTP(p.dial)
	} else {
		p.up = upstream.New(func(ctx context.Context, addr string) (net.Conn, error) { return p.dial(ctx, "tcp", addr) })
	}
	return p
}

// reqState is what one request learns on its way: group, tries, answer.
type reqState struct {
	table  *route.Table
	group  *route.Group
	host   string
	cookie string
	server *backend.Server // the server that answered, or the last tried
	// pinned: a Host pin chose server (its websockets do not follow the
	// active role).
	pinned  bool
	retries int
	status  int
	// answered is true when the server's response was relayed (not an
	// error of the gateway's own).
	answered bool
	start    time.Time
	hsts     string
	// bodyErr says why the server's response body failed, "" if it did not.
	bodyErr string
	// recorded: counted and logged already (before an abort).
	recorded bool
}

// ServeHTTP routes one request arriving on a listener without HSTS.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.Serve(w, r, "") }

// Serve routes one request: find the group, apply its guards, then forward
// (or upgrade) to the server it picks. A non-empty hsts is the
// Strict-Transport-Security value of the listener, which replaces any the
// server sends.
func (p *Proxy) Serve(w http.ResponseWriter, r *http.Request, hsts string) {
	if hsts != "" {
		w.Header().Set("Strict-Transport-Security", hsts)
	}
	t := p.table()
	g := t.Lookup(r.Host)
	if g == nil {
		http.Error(w, "no site is configured for this host", http.StatusNotFound)
		return
	}
	upgrade := isUpgrade(r.Header)
	if g.IsWebsocketPath(r.URL.Path) && g.Cfg.Websocket.RequireUpgrade && !IsWebsocketHandshake(r) {
		http.Error(w, "websocket path: a websocket upgrade is required", http.StatusForbidden)
		return
	}
	maxBody := int64(g.Cfg.MaxBodyBytes)
	if r.ContentLength > maxBody {
		writeError(w, http.StatusRequestEntityTooLarge)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	}
	st := &reqState{table: t, group: g, host: r.Host, start: time.Now(), hsts: hsts}
	if sc := g.Cfg.Sticky; sc != nil {
		if c, err := r.Cookie(sc.Cookie); err == nil {
			st.cookie = c.Value
		}
	}
	if upgrade {
		p.serveUpgrade(w, r, st)
	} else {
		p.forward(w, r, st)
	}
	if !st.recorded {
		p.record(r, st, upgrade)
	}
}

// record counts a finished request and writes its access log line.
func (p *Proxy) record(r *http.Request, st *reqState, upgrade bool) {
	server := "" // the gateway answered itself
	if st.answered {
		server = st.server.Name
	}
	d := time.Since(st.start)
	code := st.status
	if st.bodyErr != "" && st.answered {
		code = metrics.CodeCut
	}
	if upgrade {
		// A websocket's duration is its session, not a latency.
		p.metrics.Requests.WithLabelValues(st.group.Name, server, metrics.CodeClass(st.status)).Inc()
	} else {
		p.metrics.ObserveRequest(st.group.Name, server, code, st.retries, d)
	}
	if st.table.Config.Log.Access {
		attrs := []any{"group", st.group.Name, "server", server, "method", r.Method, "host", r.Host,
			"path", r.URL.Path, "status", st.status, "retries", st.retries,
			"duration_ms", float64(d.Microseconds()) / 1000, "remote", r.RemoteAddr}
		if st.bodyErr != "" {
			attrs = append(attrs, "error", st.bodyErr)
		}
		p.log.Info("access", attrs...)
	}
}

// CloseUpgraded closes every websocket with code and waits until their
// sessions ended or ctx is done.
func (p *Proxy) CloseUpgraded(ctx context.Context, code uint16, reason string) {
	p.upgraded.CloseAll(code, reason)
	done := make(chan struct{})
	go func() { p.wsWait.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// CloseIdle drops idle connections to servers (after a reload).
func (p *Proxy) CloseIdle() { p.up.CloseIdle() }

func (p *Proxy) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := p.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &dialError{err: err}
	}
	return c, nil
}

// bufs holds the buffers that copy response bodies.
var bufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
