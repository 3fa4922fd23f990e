package proxy

import (
	"net"
	"strconv"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/route"
)

// Causes of abandoned tries, for the metric's label.
const (
	AbandonDown = "down" // the server was marked down
	AbandonRole = "role" // the server lost the active role
)

// Abandoned counts and logs, once per event, the n tries that were
// waiting for a response head from s when it went down or lost the role
// (backend.Server.Abandon interrupted them; each is replayed on the
// server now active when the retry rules allow, else answered 502).
func (p *Proxy) Abandoned(s *backend.Server, cause string, n int) {
	if n == 0 {
		return
	}
	p.metrics.Abandoned.WithLabelValues(s.Group, s.Name, cause).Add(float64(n))
	p.log.Warn("requests waiting on the server abandoned: replayed where safe, else 502", "group", s.Group,
		"server", s.Name, "cause", cause, "count", n)
}

// onStall marks s down passively: n requests waited for a response head
// for waited and none came from it (it accepts requests and answers
// none, while its checks may pass). Going down abandons those requests.
func (p *Proxy) onStall(s *backend.Server, waited time.Duration, n int) {
	s.Eject("passive: no response head for "+waited.Round(time.Millisecond).String()+" while "+
		strconv.Itoa(n)+" requests waited", p.ejections(s))
}

// ejections returns the ejection times of s's group, from the table in use.
func (p *Proxy) ejections(s *backend.Server) backend.Ejection {
	if g := p.table().Group(s.Group); g != nil {
		return ejection(g.Cfg.Passive)
	}
	return backend.Ejection{}
}

// ejection is a group's passive config as backend.Ejection.
func ejection(pc config.Passive) backend.Ejection {
	return backend.Ejection{Base: pc.BaseEjectionTime.D(), Max: pc.MaxEjectionTime.D(), Decay: pc.Window.D()}
}

// dialEjection is the ejection for a failure to connect to s: none when
// its checks dial the same address (they see what the dial saw, and judge
// its return), else the group's.
func dialEjection(pc config.Passive, h config.Health, s *backend.Server) backend.Ejection {
	if _, port, _ := net.SplitHostPort(s.Address); h.Port == 0 || strconv.Itoa(h.Port) == port {
		return backend.Ejection{}
	}
	return ejection(pc)
}

// failureEjection is the ejection for a failed exchange with s: a lost
// connection (closed, reset: the process died) is what a check sees too,
// as a failure to connect is; a malformed answer, a timeout or a 5xx is
// what checks that pass do not see, and holds the server down.
func failureEjection(g *route.Group, s *backend.Server, err error) backend.Ejection {
	switch reason(err) {
	case "connection closed", "connection reset":
		return dialEjection(g.Cfg.Passive, g.Cfg.Health, s)
	}
	return ejection(g.Cfg.Passive)
}
