package proxy

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/failover"
	"github.com/tandemproxy/tandem/internal/metrics"
	"github.com/tandemproxy/tandem/internal/route"
)

// harness is a Proxy in front of servers on loopback, with the table it
// routes with.
type harness struct {
	p     *Proxy
	table *route.Table
	group *route.Group
	front *httptest.Server

	// done gets a value when the proxy finished a request (serve).
	done chan struct{}

	mu       sync.Mutex
	switches []failover.Switch
}

// newHarness builds a failover group "app" over addrs (the first is the
// master, the others backups) with health checks off; groupYAML adds lines
// to the group (indented by four spaces).
func newHarness(tb testing.TB, groupYAML string, addrs ...string) *harness {
	tb.Helper()
	return newEngineHarness(tb, config.EngineTandem, groupYAML, addrs...)
}

// engines are the values of config.Engine: the tests of the exchange
// with the servers run with each.
var engines = []string{config.EngineTandem, config.EngineNetHTTP}

// forEngines runs test once with each engine, as a subtest named for it.
func forEngines(t *testing.T, test func(t *testing.T, engine string)) {
	for _, e := range engines {
		t.Run(strings.ReplaceAll(e, "/", ""), func(t *testing.T) { test(t, e) })
	}
}

// newEngineHarness is newHarness with the servers' client of engine.
func newEngineHarness(tb testing.TB, engine, groupYAML string, addrs ...string) *harness {
	tb.Helper()
	var b strings.Builder
	b.WriteString("engine: " + engine + "\n")
	b.WriteString("listeners:\n  - {name: web, address: \"127.0.0.1:0\"}\ngroups:\n  - name: app\n    health: {disabled: true}\n")
	b.WriteString(groupYAML)
	b.WriteString("    servers:\n")
	for i, a := range addrs {
		b.WriteString("      - {name: s" + strconv.Itoa(i) + ", address: \"" + a + "\"")
		if i > 0 {
			b.WriteString(", backup: true")
		}
		b.WriteString("}\n")
	}
	cfg, err := config.Parse("t.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	h := &harness{}
	h.table = route.Build(cfg, backend.NewRegistry(nil), func(name string) *failover.Elector {
		return failover.NewElector(name, func(sw failover.Switch) {
			h.mu.Lock()
			h.switches = append(h.switches, sw)
			h.mu.Unlock()
		})
	})
	h.group = h.table.Group("app")
	h.group.Elector.SetView(h.group.View, "test")
	h.p = New(func() *route.Table { return h.table }, slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()), cfg.Engine)
	return h
}

// switched returns the switches so far, and forgets them.
func (h *harness) switched() []failover.Switch {
	h.mu.Lock()
	defer h.mu.Unlock()
	sw := h.switches
	h.switches = nil
	return sw
}

// serve starts a front server (net/http's) with the proxy as handler.
func (h *harness) serve(tb testing.TB) *httptest.Server {
	tb.Helper()
	h.done = make(chan struct{}, 64)
	h.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { h.done <- struct{}{} }()
		h.p.ServeHTTP(w, r)
	}))
	tb.Cleanup(h.front.Close)
	return h.front
}

// finished waits until the proxy finished a request.
func (h *harness) finished(tb testing.TB) {
	tb.Helper()
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		tb.Fatal("the proxy did not finish the request")
	}
}
