// Package gateway assembles tandem's gateway: listeners, routing table,
// health probers, electors and the admin API, and owns reload and shutdown.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/failover"
	"github.com/tandemproxy/tandem/internal/h1"
	"github.com/tandemproxy/tandem/internal/health"
	"github.com/tandemproxy/tandem/internal/kube"
	"github.com/tandemproxy/tandem/internal/metrics"
	"github.com/tandemproxy/tandem/internal/proxy"
	"github.com/tandemproxy/tandem/internal/route"
)

// Gateway is one running tandem gateway.
type Gateway struct {
	path string
	log  *slog.Logger

	reg     *backend.Registry
	health  *health.Manager
	metrics *metrics.Metrics
	proxy   *proxy.Proxy
	table   atomic.Pointer[route.Table]
	lsn     atomic.Pointer[map[string]*listenerState]
	// notes runs the switch handling and the logs of transitions, in
	// order, off the goroutine that caused them.
	notes *notifier

	mu  sync.Mutex // serialises reloads
	ctx context.Context
	cfg *config.Config // the file's config last applied (without discovered servers)

	// Kubernetes, when configured: servers discovered from pods, and the
	// replicas' coordination (nil for a gateway on its own).
	discovery  *kube.Discovery
	discovered kube.Snapshot
	coord      *kube.Coordinator
	reasons    sync.Map // backend.Key -> why it last changed state

	// Ready is closed once every listener accepts connections.
	Ready chan struct{}
	addrs sync.Map // listener name -> bound address
}

// listenerState is what a listener reads per request and a reload replaces.
type listenerState struct {
	hsts      string
	httpsPort int
	cert      *tls.Certificate
}

// New prepares a gateway for cfg, read from path (for reloads), with its
// metrics registered on reg.
func New(cfg *config.Config, path string, log *slog.Logger, reg prometheus.Registerer) (*Gateway, error) {
	g := &Gateway{path: path, log: log, notes: &notifier{log: log}, Ready: make(chan struct{})}
	g.metrics = metrics.New(reg)
	reg.MustRegister(stateCollector{g})
	g.reg = backend.NewRegistry(g.onTransition)
	g.health = health.NewManager(log, g.metrics)
	g.proxy = proxy.New(g.table.Load, log, g.metrics, cfg.Engine)
	ls, err := listenerStates(cfg)
	if err != nil {
		return nil, err
	}
	g.lsn.Store(&ls)
	if k := cfg.Kubernetes; k != nil {
		timeout := 10 * time.Second
		if co := k.Coordination; co != nil {
			// Short enough that a replica cut off from the API notices
			// within its fencing bound.
			timeout = max(co.FenceAfter.D()/2, co.Heartbeat.D())
		}
		client, _, err := kube.NewClient(k, timeout)
		if err != nil {
			return nil, err
		}
		g.discovery = kube.NewDiscovery(client, cfg, g.onDiscovered, log)
		if k.Coordination != nil {
			g.coord = kube.NewCoordinator(client, cfg, kubeHost{g}, log)
		}
	}
	return g, nil
}

// Addr returns the address a listener is bound to (useful with port 0).
func (g *Gateway) Addr(name string) string {
	v, _ := g.addrs.Load(name)
	s, _ := v.(string)
	return s
}

// elector returns the elector of failover group name for a table being
// built: the one of the table in use, so that it outlives the reload,
// or a new one for a group new in failover mode. The routing table is
// the only place that keeps electors.
func (g *Gateway) elector(name string) *failover.Elector {
	if t := g.table.Load(); t != nil {
		if grp := t.Group(name); grp != nil && grp.Elector != nil {
			return grp.Elector
		}
	}
	var e *failover.Elector
	e = failover.NewElector(name, func(sw failover.Switch) { g.onSwitch(e, sw) })
	if g.coord != nil {
		e.Follow(g.coord)
	}
	return e
}

// onTransition lets a server's group re-decide at once, in the goroutine
// that saw the transition (a request's, a prober's), and queues its log
// line, before the switch handling a switch it causes queues.
func (g *Gateway) onTransition(tr backend.Transition) {
	s := tr.Server
	g.notes.post(func() {
		lvl := slog.LevelInfo
		if tr.To == backend.Down {
			lvl = slog.LevelWarn
		}
		g.log.Log(context.Background(), lvl, "server state changed", "group", s.Group, "server", s.Name,
			"address", s.Address, "from", tr.From.String(), "to", tr.To.String(), "reason", tr.Reason)
		g.proxy.Abandoned(s, proxy.AbandonDown, tr.Abandoned)
	})
	g.reasons.Store(s.Key, tr.Reason)
	if t := g.table.Load(); t != nil {
		if grp := t.Group(s.Group); grp != nil && grp.Elector != nil {
			// The cause goes with it: the history and Events say what was
			// seen, and why the server is held down if it is.
			grp.Elector.Evaluate("health: " + s.Name + " " + tr.To.String() + " (" + tr.Reason + ")" + heldNote(s))
		}
	}
}

// heldNote says, for the switch history, why s is held down, if it is.
func heldNote(s *backend.Server) string {
	if r := s.HeldReason(); r != "" && s.State() == backend.Down {
		return " (" + r + ")"
	}
	return ""
}

// onSwitch is called by e, under its lock, as it commits sw: the decision
// is in force already. The tries still waiting on the former active
// server are let go at once (this never blocks); the rest of the switch
// handling is queued, so that it never holds up the request or the
// elector that caused the switch.
func (g *Gateway) onSwitch(e *failover.Elector, sw failover.Switch) {
	var grp *route.Group // in the table the switch was decided on
	if t := g.table.Load(); t != nil {
		grp = t.Group(sw.Group)
	}
	var from *backend.Server
	if grp != nil && sw.From != "" {
		from = grp.Server(sw.From)
	}
	abandoned := 0
	if from != nil && !from.Drained() {
		// Tries waiting on the former active server go on now.
		abandoned = from.Abandon(true)
	}
	g.notes.post(func() { g.switched(e, sw, grp, from, abandoned) })
}

// switched logs a switch, counts it and closes the websockets of the
// server that lost the active role, so their clients reconnect to the new
// one at once.
// grp and from are the group and the former active server as onSwitch
// found them (nil if not there).
func (g *Gateway) switched(e *failover.Elector, sw failover.Switch, grp *route.Group, from *backend.Server, abandoned int) {
	lvl := slog.LevelWarn
	if sw.From == "" {
		lvl = slog.LevelInfo // the first decision after start is no incident
	}
	if !sw.Revoking {
		g.log.Log(context.Background(), lvl, "active server switched", "group", sw.Group, "from", sw.From, "to", sw.To,
			"reason", sw.Reason, "kind", sw.Kind, "by", sw.By, "epoch", sw.Epoch)
	}
	if sw.Revoking {
		g.log.Warn("active server revoked: waiting for the grant", "group", sw.Group, "from", sw.From, "to", sw.To, "epoch", sw.Epoch)
	} else {
		g.metrics.Switches.WithLabelValues(sw.Group, sw.Kind).Inc()
	}
	if grp == nil || sw.From == "" {
		return
	}
	s := from
	if s != nil {
		g.proxy.Abandoned(s, proxy.AbandonRole, abandoned)
	}
	if grp.Cfg.Websocket.OnSwitch != "close" || sw.To == "" && !sw.Revoking {
		// To no server at all: the last server's websockets are kept, as
		// their clients would have nowhere to reconnect to.
		return
	}
	if c := e.Current(); c.Active == sw.From && !c.Revoking && !c.Fenced {
		// A later switch gave the role back to the server before this
		// one's handling ran: its websockets are to the active server.
		return
	}
	// A drained server's websockets get the drain's grace period instead.
	if s != nil && !s.Drained() {
		if n := s.Conns().CloseAll(proxy.CloseServiceRestart, "active server changed"); n > 0 {
			g.log.Info("closing websockets of the former active server", "group", sw.Group, "server", sw.From, "count", n)
		}
	}
}

// apply installs cfg: probers first (new servers get one check), then the
// table, then each elector re-decides against its new view.
func (g *Gateway) apply(ctx context.Context, cfg *config.Config, by string) error {
	g.cfg = cfg
	t := route.Build(withDiscovered(cfg, g.discovered), g.reg, g.elector)
	var targets []health.Target
	keep := map[backend.Key]bool{}
	for _, grp := range t.Groups {
		if co := cfg.Kubernetes; co != nil && co.Coordination != nil {
			grp.HoldWait = co.Coordination.HoldRequests.D()
		}
		ports := map[string]int{}
		for _, sc := range grp.Cfg.Servers {
			ports[sc.Name] = sc.HealthPort
		}
		for _, s := range grp.Servers {
			h := grp.Cfg.Health
			if p := ports[s.Name]; p != 0 {
				h.Port = p // a discovered server's own check port
			}
			targets = append(targets, health.Target{Server: s, Health: h, Role: checkRole(grp.Elector, s.Name)})
			keep[s.Key] = true
		}
	}
	if err := g.health.Sync(ctx, targets); err != nil {
		return err
	}
	old := g.table.Swap(t)
	for _, grp := range t.Groups {
		if grp.Elector != nil {
			grp.Elector.SetView(grp.View, by)
		}
	}
	if old != nil {
		old.Retire() // requests waiting on its groups pick from t
		for _, was := range old.Groups {
			if now := t.Group(was.Name); was.Elector != nil && (now == nil || now.Elector != was.Elector) {
				was.Elector.Stop() // its group left the config or failover mode
			}
		}
	}
	for _, s := range g.reg.Retain(keep) {
		s.Conns().CloseAll(proxy.CloseServiceRestart, "server removed from the configuration")
	}
	return nil
}

// checkRole is the X-Tandem-Role a failover server's checks carry: its
// role in the decision in force ("active; epoch=7" or "standby; epoch=7"),
// so that appkit tells an idle active server from a standby.
func checkRole(e *failover.Elector, server string) func() string {
	if e == nil {
		return nil
	}
	return func() string {
		c := e.Current()
		role := "standby"
		if c.Active == server && !c.Fenced && !c.Revoking {
			role = "active"
		}
		return role + "; epoch=" + strconv.FormatUint(c.Epoch, 10)
	}
}

// withDiscovered returns cfg with the discovered servers of its
// Kubernetes groups filled in; cfg itself is never mutated.
func withDiscovered(cfg *config.Config, snap kube.Snapshot) *config.Config {
	has := false
	for _, gc := range cfg.Groups {
		has = has || gc.Kubernetes != nil
	}
	if !has {
		return cfg
	}
	out := *cfg
	out.Groups = append([]config.Group(nil), cfg.Groups...)
	for i := range out.Groups {
		if out.Groups[i].Kubernetes != nil {
			out.Groups[i].Servers = snap[out.Groups[i].Name]
		}
	}
	return &out
}

// onDiscovered applies a new snapshot of discovered servers, as a reload
// applies a file: health survives for every server that stayed.
func (g *Gateway) onDiscovered(snap kube.Snapshot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.discovered = snap
	if g.ctx == nil || g.cfg == nil {
		return // Run applies it with the first config
	}
	if err := g.apply(g.ctx, g.cfg, "discovery"); err != nil {
		g.log.Error("discovered servers refused", "error", err)
		return
	}
	var names []string
	for grp, ss := range snap {
		for _, s := range ss {
			names = append(names, grp+"/"+s.Name+"="+s.Address)
		}
	}
	g.log.Info("servers discovered", "servers", strings.Join(names, " "))
}

// Reload reads the config file again and applies it; a bad file is refused
// and the running config keeps serving.
func (g *Gateway) Reload(by string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ctx == nil {
		return errors.New("gateway is not running")
	}
	cfg, err := config.Load(g.path)
	if err == nil {
		err = restartOnly(g.table.Load().Config, cfg)
	}
	var ls map[string]*listenerState
	if err == nil {
		ls, err = listenerStates(cfg)
	}
	if err == nil {
		err = g.apply(g.ctx, cfg, "reload by "+by)
	}
	g.metrics.Reload(err)
	if err != nil {
		g.log.Error("config reload refused; the running config keeps serving", "by", by, "error", err)
		return fmt.Errorf("reload refused: %w", err)
	}
	g.lsn.Store(&ls)
	g.proxy.CloseIdle()
	g.log.Info("config reloaded", "by", by, "file", g.path)
	return nil
}

// restartOnly refuses a reload that changes what only a restart applies:
// the sockets (listeners, admin address), and the engine, for which the
// listeners' servers and the servers' client are built at start.
func restartOnly(old, cur *config.Config) error {
	key := func(c *config.Config) string {
		var b strings.Builder
		for _, l := range c.Listeners {
			fmt.Fprintf(&b, "%s|%s|%t|%t;", l.Name, l.Address, l.TLS != nil, l.RedirectHTTPS)
		}
		fmt.Fprintf(&b, "admin=%s", c.Admin.Address)
		return b.String()
	}
	if key(old) != key(cur) {
		return errors.New("listeners or admin address changed: restart tandem to apply them")
	}
	if old.Engine != cur.Engine {
		return fmt.Errorf("%s: engine: changed from %s to %s: restart tandem to apply it", cur.File, old.Engine, cur.Engine)
	}
	return nil
}

func listenerStates(cfg *config.Config) (map[string]*listenerState, error) {
	out := map[string]*listenerState{}
	httpsPort := 0
	for _, l := range cfg.Listeners {
		if l.TLS != nil && httpsPort == 0 {
			_, p, _ := net.SplitHostPort(l.Address)
			httpsPort, _ = strconv.Atoi(p)
		}
	}
	for _, l := range cfg.Listeners {
		st := &listenerState{httpsPort: httpsPort}
		if l.HTTPSPort != 0 {
			st.httpsPort = l.HTTPSPort
		}
		if l.HSTS != nil {
			st.hsts = HSTSValue(*l.HSTS)
		}
		if l.TLS != nil {
			cert, err := tls.LoadX509KeyPair(l.TLS.Cert, l.TLS.Key)
			if err != nil {
				return nil, fmt.Errorf("%s: listener %s: load certificate: %w", cfg.File, l.Name, err)
			}
			st.cert = &cert
		}
		out[l.Name] = st
	}
	return out, nil
}

// HSTSValue renders a Strict-Transport-Security header value.
func HSTSValue(h config.HSTS) string {
	if h.Header != "" {
		return h.Header
	}
	v := "max-age=" + strconv.Itoa(h.MaxAge)
	if h.IncludeSubDomains {
		v += "; includeSubDomains"
	}
	if h.Preload {
		v += "; preload"
	}
	return v
}

// Run serves until ctx ends, then drains: listeners stop accepting,
// in-flight requests get the drain period, websockets are closed with 1001.
func (g *Gateway) Run(ctx context.Context, cfg *config.Config) error {
	g.mu.Lock()
	g.ctx = ctx
	err := g.apply(ctx, cfg, "start")
	g.mu.Unlock()
	if err != nil {
		return err
	}
	defer g.health.Stop()
	var kwg sync.WaitGroup
	defer kwg.Wait()
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	var parts []func(context.Context) error
	if g.discovery != nil {
		parts = append(parts, g.discovery.Run)
	}
	if g.coord != nil {
		parts = append(parts, g.coord.Run)
	}
	for _, run := range parts {
		kwg.Go(func() {
			if err := run(kctx); err != nil && kctx.Err() == nil {
				g.log.Error("kubernetes", "error", err)
			}
		})
	}

	var servers []server
	errc := make(chan error, len(cfg.Listeners)+1)
	lim := fitFDs(cfg.Limits, len(cfg.Listeners), g.log)
	for _, l := range cfg.Listeners {
		srv, ln, err := g.listen(l, lim, cfg.Engine)
		if err != nil {
			for _, s := range servers {
				s.Close()
			}
			return err
		}
		servers = append(servers, srv)
		g.addrs.Store(l.Name, ln.Addr().String())
		g.log.Info("listening", "listener", l.Name, "address", ln.Addr().String(), "tls", l.TLS != nil, "redirectHTTPS", l.RedirectHTTPS,
			"engine", cfg.Engine)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("listener %s: %w", l.Name, err)
			}
		}()
	}
	close(g.Ready)

	select {
	case <-ctx.Done():
	case err := <-errc:
		for _, s := range servers {
			s.Close()
		}
		return err
	}
	drain := cfg.Limits.Drain.D()
	if t := g.table.Load(); t != nil {
		drain = t.Config.Limits.Drain.D()
	}
	g.log.Info("shutting down: draining in-flight requests", "drain", drain)
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() {
			if err := s.Shutdown(dctx); err != nil {
				s.Close()
			}
		})
	}
	wg.Wait()
	wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer wcancel()
	g.proxy.CloseUpgraded(wctx, proxy.CloseGoingAway, "gateway shutting down")
	if !g.notes.wait(2 * time.Second) {
		g.log.Warn("stopped with notifications still queued")
	}
	g.log.Info("stopped")
	return nil
}

// server is what serves one listener: the fast HTTP/1.1 server, with
// net/http's behind it (HTTP/2, and whatever the fast path leaves), or
// with engine net/http, net/http's alone.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// tlsServer is net/http's server on a TLS listener (engine net/http):
// it does the handshakes itself, with its TLSConfig.
type tlsServer struct{ *http.Server }

func (s tlsServer) Serve(ln net.Listener) error { return s.ServeTLS(ln, "", "") }

// listen binds one public listener and builds its server for engine.
func (g *Gateway) listen(l config.Listener, lim config.Limits, engine string) (server, net.Listener, error) {
	name := l.Name
	state := func() *listenerState { return (*g.lsn.Load())[name] }
	var h http.Handler
	switch {
	case l.RedirectHTTPS:
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { redirectHTTPS(w, r, state().httpsPort) })
	default:
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.proxy.Serve(w, r, state().hsts) })
	}
	srv := &http.Server{
		Handler:           h,
		MaxHeaderBytes:    int(lim.MaxHeaderBytes),
		ReadHeaderTimeout: lim.ReadHeaderTimeout.D(),
		IdleTimeout:       lim.IdleTimeout.D(),
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	tcp, err := net.Listen("tcp", l.Address)
	if err != nil {
		return nil, nil, fmt.Errorf("listener %s: %w", name, err)
	}
	ln := newLimitListener(tcp, lim.MaxConnections, name, g.log,
		g.metrics.Connections.WithLabelValues(name), g.metrics.ConnLimitWaits.WithLabelValues(name))
	fast := &h1.Server{
		Handler:           h,
		Fallback:          srv,
		MaxHeaderBytes:    int(lim.MaxHeaderBytes),
		ReadHeaderTimeout: lim.ReadHeaderTimeout.D(),
		IdleTimeout:       lim.IdleTimeout.D(),
		Log:               g.log,
	}
	netOnly := engine == config.EngineNetHTTP
	if l.TLS == nil {
		if netOnly {
			return srv, ln, nil
		}
		// Plain HTTP/1.1: the fast path, with net/http for what it leaves.
		return fast, ln, nil
	}
	minV := uint16(tls.VersionTLS12)
	if l.TLS.MinVersion == "1.3" {
		minV = tls.VersionTLS13
	}
	srv.TLSConfig = &tls.Config{
		MinVersion:   minV,
		CipherSuites: modernSuites,
		NextProtos:   []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return state().cert, nil
		},
	}
	// HTTP/2 as well as HTTP/1.1 over TLS: the fast path serves HTTP/1.1
	// and hands h2 connections to net/http after the handshake.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	if netOnly {
		return tlsServer{srv}, ln, nil
	}
	fast.TLSConfig = srv.TLSConfig
	return fast, ln, nil
}

// modernSuites are the TLS 1.2 suites offered: forward secret key exchange
// and AEAD ciphers only (TLS 1.3's are fixed and all modern).
var modernSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// redirectHTTPS answers 301 to the same host, path and query over https.
func redirectHTTPS(w http.ResponseWriter, r *http.Request, port int) {
	host := route.HostOnly(r.Host)
	if host == "" {
		http.Error(w, "a Host header is required", http.StatusBadRequest)
		return
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != 0 && port != 443 {
		host += ":" + strconv.Itoa(port)
	}
	target := "https://" + host + r.URL.RequestURI()
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusMovedPermanently)
}
