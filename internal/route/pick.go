package route

import (
	"errors"
	"slices"

	"github.com/tandemproxy/tandem/internal/backend"
)

// ErrNoServer means no server of the group may take the request now.
var ErrNoServer = errors.New("no server available")

// Choice is the server picked for one try, and how.
type Choice struct {
	Server *backend.Server
	// Pinned is true when a Host pin chose the server.
	Pinned bool
}

// Pick chooses the server for a try of a request to host, carrying the
// sticky cookie value (may be ""), skipping servers already tried.
func (g *Group) Pick(host, cookie string, tried []*backend.Server) (Choice, error) {
	if p, ok := g.pins[HostOnly(host)]; ok {
		if p.server.Available() && !slices.Contains(tried, p.server) {
			return Choice{Server: p.server, Pinned: true}, nil
		}
		if p.strict {
			return Choice{}, ErrNoServer
		}
	}
	if g.Elector != nil {
		if s := g.byName[g.Elector.Active()]; s != nil && s.Available() && !slices.Contains(tried, s) {
			return Choice{Server: s}, nil
		}
		// The active server is down or was tried: the next available one in
		// priority order, the way the elector will choose.
		for _, s := range g.Servers {
			if s.Available() && !slices.Contains(tried, s) {
				return Choice{Server: s}, nil
			}
		}
		return Choice{}, ErrNoServer
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
