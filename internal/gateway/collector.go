package gateway

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tandemproxy/tandem/internal/backend"
)

// stateCollector reads the gateway's state at scrape time, so gauges can
// never drift from what the gateway routes on.
type stateCollector struct{ g *Gateway }

var (
	descUp = prometheus.NewDesc("tandem_server_up",
		"1 if the server passes its health checks (or is not checked yet), 0 if it is down.", []string{"group", "server"}, nil)
	descDrained = prometheus.NewDesc("tandem_server_drained",
		"1 if an operator took the server out of service.", []string{"group", "server"}, nil)
	descActive = prometheus.NewDesc("tandem_group_active_server",
		"1 for the active server of a failover group, 0 for the others.", []string{"group", "server"}, nil)
	descEpoch = prometheus.NewDesc("tandem_group_epoch",
		"Number of switches of the group's active server since start.", []string{"group"}, nil)
	descSince = prometheus.NewDesc("tandem_group_seconds_since_last_switch",
		"Seconds since the group's active server last changed.", []string{"group"}, nil)
	descWS = prometheus.NewDesc("tandem_websockets_open",
		"Open websocket connections through the gateway, by server.", []string{"group", "server"}, nil)
	descLeader = prometheus.NewDesc("tandem_coordination_leader",
		"1 if this replica holds the leader Lease and decides, 0 if it follows.", nil, nil)
	descFenced = prometheus.NewDesc("tandem_coordination_fenced",
		"1 if this replica lost sight of the coordination state and sends to no server.", nil, nil)
	descReplicas = prometheus.NewDesc("tandem_coordination_replicas_live",
		"Gateway replicas whose heartbeat Lease is fresh, as this replica sees them.", nil, nil)
	descRevoking = prometheus.NewDesc("tandem_group_revoking",
		"1 while a two-phase switch of the group waits for its grant.", []string{"group"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descDrained, descActive, descEpoch, descSince, descWS, descLeader, descFenced, descReplicas, descRevoking} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.g.table.Load()
	if t == nil {
		return
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	if co := c.g.coord; co != nil {
		st := co.Status()
		live := 0
		for _, r := range st.Replicas {
			if r.Live {
				live++
			}
		}
		ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, b2f(st.Leading))
		ch <- prometheus.MustNewConstMetric(descFenced, prometheus.GaugeValue, b2f(st.Fenced))
		ch <- prometheus.MustNewConstMetric(descReplicas, prometheus.GaugeValue, float64(live))
	}
	for _, grp := range t.Groups {
		active := ""
		if e := grp.Elector; e != nil {
			active = e.Active()
			ch <- prometheus.MustNewConstMetric(descEpoch, prometheus.CounterValue, float64(e.Epoch()), grp.Name)
			if c.g.coord != nil {
				ch <- prometheus.MustNewConstMetric(descRevoking, prometheus.GaugeValue, b2f(e.Current().Revoking), grp.Name)
			}
			if h := e.History(); len(h) > 0 {
				ch <- prometheus.MustNewConstMetric(descSince, prometheus.GaugeValue, time.Since(h[len(h)-1].At).Seconds(), grp.Name)
			}
		}
		for _, s := range grp.Servers {
			ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, b2f(s.State() != backend.Down), grp.Name, s.Name)
			ch <- prometheus.MustNewConstMetric(descDrained, prometheus.GaugeValue, b2f(s.Drained()), grp.Name, s.Name)
			ch <- prometheus.MustNewConstMetric(descWS, prometheus.GaugeValue, float64(s.Conns().Len()), grp.Name, s.Name)
			if grp.Elector != nil {
				ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, b2f(s.Name == active), grp.Name, s.Name)
			}
		}
	}
}
