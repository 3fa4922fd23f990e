// Package route owns the immutable routing table: which group serves a
// Host, and which server of the group takes a request. A table is built
// from one config snapshot and swapped atomically; it is never mutated.
package route

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/failover"
)

// Table maps hosts to groups.
type Table struct {
	Config *config.Config
	Groups []*Group
	// Trusted are the peers whose X-Forwarded-* and Forwarded are believed.
	Trusted  []netip.Prefix
	exact    map[string]*Group
	wildcard map[string]*Group // "example.com" for "*.example.com"
	fallback *Group
	// replaced is closed when a newer table takes this one's place (Retire).
	replaced chan struct{}
}

// Retire tells the requests still picking from this table's groups that a
// newer table took its place. Called once, by whoever installed the newer.
func (t *Table) Retire() { close(t.replaced) }

// Group is one application's servers with their routing rules.
type Group struct {
	Name    string
	Cfg     *config.Group
	Servers []*backend.Server // priority order (failover) or file order
	Elector *failover.Elector // nil in round-robin mode
	// HoldWait bounds how long a request waits for the leader's decision
	// while a follower's active server is unavailable or being switched.
	HoldWait time.Duration

	byName   map[string]*backend.Server
	replaced <-chan struct{} // its table's
	pins     map[string]pin
	cookies  map[string]*backend.Server // sticky cookie value -> server
	rr       *atomic.Uint64
}

type pin struct {
	server *backend.Server
	strict bool
}

// Build makes a table from cfg. Servers come from reg so that their state
// survives reloads; electors come from elector (by group name) likewise.
func Build(cfg *config.Config, reg *backend.Registry, elector func(name string) *failover.Elector) *Table {
	t := &Table{Config: cfg, exact: map[string]*Group{}, wildcard: map[string]*Group{}, replaced: make(chan struct{})}
	for _, tp := range cfg.TrustedProxies {
		if p, err := config.ParsePrefix(tp); err == nil {
			t.Trusted = append(t.Trusted, p)
		}
	}
	for i := range cfg.Groups {
		gc := &cfg.Groups[i]
		g := &Group{Name: gc.Name, Cfg: gc, byName: map[string]*backend.Server{}, replaced: t.replaced, pins: map[string]pin{},
			cookies: map[string]*backend.Server{}, rr: new(atomic.Uint64), HoldWait: DefaultHoldWait}
		order := make([]int, len(gc.Servers))
		for j := range order {
			order[j] = j
		}
		if gc.Mode == config.ModeFailover {
			sort.SliceStable(order, func(a, b int) bool {
				sa, sb := gc.Servers[order[a]], gc.Servers[order[b]]
				if sa.Backup != sb.Backup {
					return !sa.Backup
				}
				return sa.Priority < sb.Priority
			})
		}
		for _, j := range order {
			sc := gc.Servers[j]
			s := reg.Get(backend.Key{Group: gc.Name, Name: sc.Name, Address: sc.Address, Instance: sc.Instance})
			g.Servers = append(g.Servers, s)
			g.byName[sc.Name] = s
			g.cookies[CookieValue(gc.Name, sc.Name)] = s
		}
		for _, p := range gc.Pin {
			g.pins[strings.ToLower(p.Host)] = pin{server: g.byName[p.Server], strict: p.Strict}
		}
		if gc.Mode == config.ModeFailover {
			g.Elector = elector(gc.Name)
		}
		t.Groups = append(t.Groups, g)
		if len(gc.Hosts) == 0 {
			t.fallback = g
		}
		for _, h := range gc.Hosts {
			h = strings.ToLower(h)
			if rest, ok := strings.CutPrefix(h, "*."); ok {
				t.wildcard[rest] = g
			} else {
				t.exact[h] = g
			}
		}
	}
	return t
}

// Group returns the group named name, or nil.
func (t *Table) Group(name string) *Group {
	for _, g := range t.Groups {
		if g.Name == name {
			return g
		}
	}
	return nil
}

// Lookup returns the group for a request's Host, or nil.
func (t *Table) Lookup(host string) *Group {
	h := HostOnly(host)
	if g, ok := t.exact[h]; ok {
		return g
	}
	if _, rest, ok := strings.Cut(h, "."); ok {
		if g, ok := t.wildcard[rest]; ok {
			return g
		}
	}
	return t.fallback
}

// HostOnly lowercases a Host header and drops its port.
func HostOnly(host string) string {
	// Only a host with a colon can have a port (SplitHostPort allocates
	// the error it returns for one without).
	if strings.IndexByte(host, ':') >= 0 {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// Server returns the server named name, or nil.
func (g *Group) Server(name string) *backend.Server { return g.byName[name] }

// View is the elector's view of this group: candidates in priority order.
func (g *Group) View() ([]failover.Candidate, failover.Policy) {
	cands := make([]failover.Candidate, len(g.Servers))
	for i, s := range g.Servers {
		cands[i] = failover.Candidate{Name: s.Name, Up: s.Available(), Drained: s.Drained(), UpSince: s.Since()}
	}
	pol := failover.Policy{Manual: g.Cfg.Failback.Policy == config.FailbackManual, After: g.Cfg.Failback.After.D()}
	return cands, pol
}

// CookieValue is the sticky cookie value naming a server without exposing
// its name.
func CookieValue(group, server string) string {
	sum := sha256.Sum256([]byte(group + "\x00" + server))
	return hex.EncodeToString(sum[:8])
}

// IsWebsocketPath reports whether path is one of the group's guarded
// websocket paths (the path itself or below it).
func (g *Group) IsWebsocketPath(path string) bool {
	for _, p := range g.Cfg.Websocket.Paths {
		if path == p || strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
			return true
		}
	}
	return false
}
