// Package metrics owns tandem's Prometheus metrics: one struct of
// collectors registered on an injected registry, never the global one.
// Values that are state (up, active, open websockets) are read at scrape
// time by a collector of the gateway's; this package holds the events.
package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/tandemproxy/tandem/internal/buildinfo"
)

const ns = "tandem"

// Metrics are the event counters and histograms of one gateway.
type Metrics struct {
	Requests        *prometheus.CounterVec
	RequestDuration *prometheus.HistogramVec
	Retries         *prometheus.CounterVec
	CheckDuration   *prometheus.HistogramVec
	CheckFailures   *prometheus.CounterVec
	Switches        *prometheus.CounterVec
	Reloads         *prometheus.CounterVec
	LastReloadOK    prometheus.Gauge
	LastReloadTime  prometheus.Gauge
	Connections     *prometheus.GaugeVec
	ConnLimitWaits  *prometheus.CounterVec
	Abandoned       *prometheus.CounterVec

	// perServer caches, per group and server, the children of the vectors
	// above that every request touches: WithLabelValues hashes and looks
	// up its labels under a lock at each call.
	perServer sync.Map // serverKey -> *serverObs
}

type serverKey struct{ group, server string }

// serverObs holds one group and server's request metrics, each created on
// first use so that a scrape shows the same series as without the cache.
type serverObs struct {
	codes    [len(codeClasses)]atomic.Pointer[prometheus.Counter]
	duration prometheus.Observer
	retries  atomic.Pointer[prometheus.Counter]
}

// New registers tandem's metrics, Go runtime and process metrics, and
// build info on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "requests_total",
			Help: "Requests answered, by group, server that answered (empty if none) and status class (cut: the server broke the response body after its head was sent on)."},
			[]string{"group", "server", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "request_duration_seconds",
			Help:    "Time from request to response headers written back, retries included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"group"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "retries_total",
			Help: "Tries after the first, by group."}, []string{"group"}),
		CheckDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "health_check_duration_seconds",
			Help:    "Duration of active health checks.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}},
			[]string{"group", "server"}),
		CheckFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "health_check_failures_total",
			Help: "Failed active health checks by reason (refused, reset, timeout, status, body, error; local: the gateway was short of fds or buffers, not counted against the server)."},
			[]string{"group", "server", "reason"}),
		Switches: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "switches_total",
			Help: "Changes of a group's active server by kind (start, down, drained, removed, failback, operator, none)."},
			[]string{"group", "kind"}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "config_reloads_total",
			Help: "Config reloads by result (success, failure)."}, []string{"result"}),
		LastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "config_last_reload_successful",
			Help: "1 if the last config reload was applied, 0 if it was refused."}),
		LastReloadTime: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "config_last_reload_success_timestamp_seconds",
			Help: "When the config was last loaded successfully."}),
		Connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "connections_open",
			Help: "Client connections open, by listener."}, []string{"listener"}),
		ConnLimitWaits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "connection_limit_waits_total",
			Help: "Times a listener had limits.maxConnections open and new connections waited in the backlog."},
			[]string{"listener"}),
		Abandoned: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "requests_abandoned_total",
			Help: "Tries waiting for a response head from a server that was marked down (cause down) or lost the active role (cause role): replayed elsewhere when safe, else answered 502."},
			[]string{"group", "server", "cause"}),
	}
	m.LastReloadOK.Set(1)
	m.LastReloadTime.SetToCurrentTime()
	reg.MustRegister(m.Requests, m.RequestDuration, m.Retries, m.CheckDuration, m.CheckFailures,
		m.Switches, m.Reloads, m.LastReloadOK, m.LastReloadTime, m.Connections, m.ConnLimitWaits, m.Abandoned, buildInfo(),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// buildInfo is tandem_build_info: 1, with the build's identity as labels,
// the same fields `tandem version` prints.
func buildInfo() prometheus.Collector {
	bi := buildinfo.Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "build_info",
		Help: "Build information; the value is 1.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "modified": strconv.FormatBool(bi.Modified),
			"date": bi.Date, "goversion": bi.Go}})
	g.Set(1)
	return g
}

// codeClasses avoids formatting a label per request.
var codeClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// CodeCut is the code of a request whose response body the server cut
// off or garbled after its head was sent on: label "cut".
const CodeCut = -1

// CodeClass returns "2xx" for 204, "cut" for CodeCut, and the code itself
// for odd ones.
func CodeClass(code int) string {
	switch {
	case code >= 100 && code < 600:
		return codeClasses[code/100-1]
	case code == CodeCut:
		return "cut"
	}
	return strconv.Itoa(code)
}

// ObserveRequest records one finished request.
func (m *Metrics) ObserveRequest(group, server string, code, retries int, d time.Duration) {
	o := m.serverObs(group, server)
	if code >= 100 && code < 600 {
		counter(&o.codes[code/100-1], func() prometheus.Counter {
			return m.Requests.WithLabelValues(group, server, codeClasses[code/100-1])
		}).Inc()
	} else {
		m.Requests.WithLabelValues(group, server, CodeClass(code)).Inc()
	}
	o.duration.Observe(d.Seconds())
	if retries > 0 {
		counter(&o.retries, func() prometheus.Counter { return m.Retries.WithLabelValues(group) }).Add(float64(retries))
	}
}

func (m *Metrics) serverObs(group, server string) *serverObs {
	k := serverKey{group, server}
	if o, ok := m.perServer.Load(k); ok {
		return o.(*serverObs)
	}
	o, _ := m.perServer.LoadOrStore(k, &serverObs{duration: m.RequestDuration.WithLabelValues(group)})
	return o.(*serverObs)
}

// counter returns the counter in p, creating it with mk the first time.
// Two first uses at once both call mk, which returns the same child.
func counter(p *atomic.Pointer[prometheus.Counter], mk func() prometheus.Counter) prometheus.Counter {
	if c := p.Load(); c != nil {
		return *c
	}
	c := mk()
	p.Store(&c)
	return c
}

// Reload records a reload's outcome.
func (m *Metrics) Reload(err error) {
	if err != nil {
		m.Reloads.WithLabelValues("failure").Inc()
		m.LastReloadOK.Set(0)
		return
	}
	m.Reloads.WithLabelValues("success").Inc()
	m.LastReloadOK.Set(1)
	m.LastReloadTime.SetToCurrentTime()
}
