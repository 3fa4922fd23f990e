package route

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/failover"
)

// ErrNoServer means no server of the group may take the request now.
var ErrNoServer = errors.New("no server available")

// ErrTableChanged: the decision names a server the group's table lacks,
// and a newer table took its place: pick again from that one's group.
// The error is a TableChanged, which says until when the request may still
// wait.
var ErrTableChanged = errors.New("the routing table changed: pick from the new one")

// TableChanged is the error of a pick that waited for a decision and
// learnt of a newer table. HoldUntil is when its wait began plus HoldWait:
// the pick from the new table is to wait no longer (a context with that
// deadline), or a request could wait HoldWait again at each change.
type TableChanged struct{ HoldUntil time.Time }

func (TableChanged) Error() string        { return ErrTableChanged.Error() }
func (TableChanged) Is(target error) bool { return target == ErrTableChanged }

// Choice is the server picked for one try, and how.
type Choice struct {
	Server *backend.Server
	// Pinned is true when a Host pin chose the server.
	Pinned bool
	// Epoch is the epoch of the decision that made Server active, sent to
	// it so that a fencing server refuses a replica that fell behind;
	// HasEpoch is false in round-robin mode.
	Epoch    uint64
	HasEpoch bool
}

// DefaultHoldWait bounds how long a request waits for a decision while a
// follower's active server is being switched (see Group.HoldWait).
const DefaultHoldWait = 3 * time.Second

// Pick chooses the server for a try of a request to host, carrying the
// sticky cookie value (may be ""), skipping servers already tried.
//
// In failover mode only the committed decision picks the server. A local
// elector lets a request fall back at once to the next available server in
// priority order (the elector is switching to it in the same breath). A
// follower of published decisions never judges alone: while its active
// server is unavailable or being switched, the request waits, at most
// HoldWait (or until ctx's deadline, if sooner), for the leader's next
// decision; a fenced replica sends nowhere.
func (g *Group) Pick(ctx context.Context, host, cookie string, tried []*backend.Server) (Choice, error) {
	var c *failover.Committed
	if g.Elector != nil {
		c = g.Elector.Current()
		if c.Fenced {
			return Choice{}, ErrNoServer
		}
	}
	if p, ok := g.pins[HostOnly(host)]; ok {
		if p.server.Available() && !slices.Contains(tried, p.server) {
			return Choice{Server: p.server, Pinned: true, Epoch: c.EpochOrZero(), HasEpoch: c != nil}, nil
		}
		if p.strict {
			return Choice{}, ErrNoServer
		}
	}
	if g.Elector != nil {
		return g.pickActive(ctx, c, tried)
	}
	if s := g.cookies[cookie]; s != nil && s.Available() && !slices.Contains(tried, s) {
		return Choice{Server: s}, nil
	}
	n := uint64(len(g.Servers))
	start := g.rr.Add(1)
	for i := range n {
		s := g.Servers[(start+i)%n]
		if s.Available() && !slices.Contains(tried, s) {
			return Choice{Server: s}, nil
		}
	}
	return Choice{}, ErrNoServer
}

func (g *Group) pickActive(ctx context.Context, c *failover.Committed, tried []*backend.Server) (Choice, error) {
	var deadline time.Time // set when a wait begins: most picks do not wait
	for {
		if c.Fenced {
			// Fenced while waiting: the decision in hand may be stale.
			return Choice{}, ErrNoServer
		}
		if s := g.byName[c.Active]; s != nil && s.Available() && !slices.Contains(tried, s) {
			return Choice{Server: s, Epoch: c.Epoch, HasEpoch: true}, nil
		}
		if g.Elector.Local() {
			// The active server is down or was tried: the next available
			// one in priority order, the way the elector will choose.
			for _, s := range g.Servers {
				if s.Available() && !slices.Contains(tried, s) {
					return Choice{Server: s, Epoch: c.Epoch, HasEpoch: true}, nil
				}
			}
			return Choice{}, ErrNoServer
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(g.HoldWait)
			if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
				deadline = d // a wait begun on an older table goes on here
			}
		}
		wait := time.Until(deadline)
		if wait <= 0 || ctx.Err() != nil || !c.Revoking && c.Active == "" && !g.anyAvailable() {
			return Choice{}, ErrNoServer
		}
		var replaced <-chan struct{}
		if c.Active != "" && g.byName[c.Active] == nil {
			// The decision names a server this table lacks (this replica's
			// discovery lags the leader's): a newer table may have it, and
			// no new decision would come to say so.
			select {
			case <-g.replaced:
				return Choice{}, TableChanged{HoldUntil: deadline}
			default:
			}
			replaced = g.replaced
		}
		c = g.Elector.Await(ctx, c, wait, replaced)
	}
}

// anyAvailable reports whether some server of the group could take
// traffic, so that waiting for the leader's decision could help.
func (g *Group) anyAvailable() bool { return g.availableBesides(nil) }

// availableBesides reports whether a server of the group other than s
// could take traffic.
func (g *Group) availableBesides(s *backend.Server) bool {
	for _, o := range g.Servers {
		if o != s && o.Available() {
			return true
		}
	}
	return false
}

// LastAvailable reports whether s is the only server of a failover group
// that could take traffic: taking it out leaves the group none.
func (g *Group) LastAvailable(s *backend.Server) bool {
	return g.Cfg.Mode == config.ModeFailover && !g.availableBesides(s)
}
