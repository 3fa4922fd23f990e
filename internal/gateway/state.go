package gateway

import (
	"errors"
	"fmt"
	"time"

	"github.com/tandemproxy/tandem/internal/admin"
	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/failover"
	"github.com/tandemproxy/tandem/internal/kube"
	"github.com/tandemproxy/tandem/internal/proxy"
	"github.com/tandemproxy/tandem/internal/route"
)

// State reports every group as the gateway sees it now.
func (g *Gateway) State() admin.State {
	t := g.table.Load()
	var out admin.State
	if g.coord != nil {
		st := g.coord.Status()
		out.Cluster = &st
	}
	if t == nil {
		return out
	}
	for _, grp := range t.Groups {
		gs := admin.GroupState{Name: grp.Name, Mode: grp.Cfg.Mode, Failback: grp.Cfg.Failback.Policy, History: []failover.Switch{}}
		if a := grp.Cfg.Failback.After.D(); a > 0 {
			gs.Failback += " after " + a.String()
		}
		if e := grp.Elector; e != nil {
			d, hold := e.Status()
			c := e.Current()
			gs.Active, gs.Epoch, gs.Reason, gs.Pending, gs.Hold = c.Active, c.Epoch, d.Reason, d.Pending, hold
			gs.Revoking, gs.Fenced = c.Revoking, c.Fenced
			if !d.Recheck.IsZero() {
				gs.PendingAt = &d.Recheck
			}
			gs.History = e.History()
		}
		pods := map[string]string{}
		for _, sc := range grp.Cfg.Servers {
			pods[sc.Name] = sc.Pod
		}
		for _, s := range grp.Servers {
			ss := admin.ServerState{Pod: pods[s.Name], Name: s.Name, Address: s.Address, State: s.State().String(), Drained: s.Drained(), Since: s.Since(), Websockets: s.Conns().Len()}
			if h := s.HeldUntil(); !h.IsZero() {
				ss.HeldUntil, ss.HeldReason = &h, s.HeldReason()
			}
			if c := s.LastCheck(); c != nil {
				ss.LastCheck = &admin.CheckView{At: c.At, OK: c.OK, Status: c.Status, LatencyMS: float64(c.Latency.Microseconds()) / 1000, Detail: c.Detail}
			}
			gs.Servers = append(gs.Servers, ss)
		}
		out.Groups = append(out.Groups, gs)
	}
	return out
}

// Drain takes server out of service: no new requests or websockets, the
// requests in flight finish, its websockets are closed with 1012 after a
// grace period. In failover mode the group switches away from it.
func (g *Gateway) Drain(group, server, by string) error { return g.setDrained(group, server, by, true) }

// Undrain puts server back in service.
func (g *Gateway) Undrain(group, server, by string) error {
	return g.setDrained(group, server, by, false)
}

func (g *Gateway) setDrained(group, server, by string, on bool) error {
	grp, s, err := g.server(group, server)
	if err != nil {
		return err
	}
	if g.coord != nil && grp.Elector != nil {
		// Through the leader, so that every replica drains it.
		err := g.coord.Drain(group, server, by, on)
		if errors.Is(err, failover.ErrNothingToDo) {
			return fmt.Errorf("%w: %w", admin.ErrConflict, err)
		}
		return err
	}
	action, already := "drain", "already drained"
	if !on {
		action, already = "undrain", "not drained"
	}
	if !g.drainLocal(grp, s, on, by) {
		return fmt.Errorf("%w: %s is %s", admin.ErrConflict, server, already)
	}
	if grp.Elector != nil {
		grp.Elector.Evaluate(action + " by " + by)
	}
	return nil
}

// drainLocal drains or undrains s on this replica; it reports whether that
// changed anything.
func (g *Gateway) drainLocal(grp *route.Group, s *backend.Server, on bool, by string) bool {
	if !s.SetDrained(on) {
		return false
	}
	action := "drain"
	if !on {
		action = "undrain"
	}
	g.log.Warn("server "+action+"ed", "group", grp.Name, "server", s.Name, "by", by)
	if on {
		// Websockets get a grace period to finish what they were doing.
		time.AfterFunc(grp.Cfg.Websocket.DrainGrace.D(), func() {
			if s.Drained() {
				s.Conns().CloseAll(proxy.CloseServiceRestart, "server drained")
			}
		})
	}
	return true
}

// Readiness reports whether the gateway can route every group: its Kubernetes
// sources listed once and, with coordination, a decision is known for
// every failover group. The admin API's /readyz answers it.
func (g *Gateway) Readiness() error {
	select {
	case <-g.Ready:
	default:
		return errors.New("listeners not open yet")
	}
	if g.discovery != nil && !g.discovery.Synced() {
		return errors.New("kubernetes: discovery has not listed the pods yet")
	}
	if g.coord != nil {
		return g.coord.Ready()
	}
	return nil
}

// kubeHost is the gateway as the coordinator sees it.
type kubeHost struct{ g *Gateway }

func (h kubeHost) Groups() []kube.HostGroup {
	t := h.g.table.Load()
	if t == nil {
		return nil
	}
	var out []kube.HostGroup
	for _, grp := range t.Groups {
		if grp.Elector == nil {
			continue
		}
		_, pol := grp.View()
		hg := kube.HostGroup{Name: grp.Name, Elector: grp.Elector, Policy: pol}
		if d := grp.Cfg.Kubernetes; d != nil && d.ActiveService != "" {
			ns := d.Namespace
			if ns == "" {
				ns = kube.Namespace(t.Config.Kubernetes)
			}
			hg.ActiveService = ns + "/" + d.ActiveService
		}
		conf := map[string]config.Server{}
		for _, sc := range grp.Cfg.Servers {
			conf[sc.Name] = sc
		}
		for _, s := range grp.Servers {
			reason, _ := h.g.reasons.Load(s.Key)
			r, _ := reason.(string)
			sc := conf[s.Name]
			hg.Servers = append(hg.Servers, kube.HostServer{Name: s.Name, Healthy: s.State() != backend.Down,
				Since: s.Since(), Reason: r, Pod: sc.Pod, PodIP: sc.PodIP, PodPort: sc.PodPort, PodAddressType: sc.PodAddressType})
		}
		out = append(out, hg)
	}
	return out
}

func (h kubeHost) SetDrained(group, server string, on bool, by string) {
	grp, s, err := h.g.server(group, server)
	if err != nil {
		return
	}
	h.g.drainLocal(grp, s, on, by)
}

// History returns a group's recent switches, oldest first.
func (g *Gateway) History(group string) ([]failover.Switch, error) {
	e, err := g.failoverGroup(group)
	if err != nil {
		return nil, err
	}
	return e.History(), nil
}

func (g *Gateway) server(group, server string) (*route.Group, *backend.Server, error) {
	grp := g.table.Load().Group(group)
	if grp == nil {
		return nil, nil, fmt.Errorf("%w: %q", admin.ErrNoSuchGroup, group)
	}
	s := grp.Server(server)
	if s == nil {
		return nil, nil, fmt.Errorf("%w: %q in group %q", failover.ErrNoSuchServer, server, group)
	}
	return grp, s, nil
}

func (g *Gateway) failoverGroup(name string) (*failover.Elector, error) {
	t := g.table.Load()
	grp := t.Group(name)
	if grp == nil {
		return nil, fmt.Errorf("%w: %q", admin.ErrNoSuchGroup, name)
	}
	if grp.Elector == nil {
		return nil, fmt.Errorf("group %q is in %s mode: it has no active server", name, grp.Cfg.Mode)
	}
	return grp.Elector, nil
}

// Failback returns group to its preferred server now (manual failback).
func (g *Gateway) Failback(group, by string) error {
	e, err := g.failoverGroup(group)
	if err != nil {
		return err
	}
	g.log.Info("failback requested", "group", group, "by", by)
	return e.Failback(by)
}

// Switch makes server the active server of group and holds it there.
func (g *Gateway) Switch(group, server, by string) error {
	e, err := g.failoverGroup(group)
	if err != nil {
		return err
	}
	g.log.Info("switch requested", "group", group, "server", server, "by", by)
	return e.SwitchTo(server, by)
}
