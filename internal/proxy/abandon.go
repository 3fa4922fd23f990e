package proxy

import (
	"strconv"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
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

// AbandonRole interrupts the tries that wait on s, which lost the
// active role (pinned ones stay), and counts them.
func (p *Proxy) AbandonRole(s *backend.Server) {
	p.Abandoned(s, AbandonRole, s.Abandon(true))
}

// onStall marks s down passively: n requests waited for a response head
// for waited and none came from it (it accepts requests and answers
// none, while its checks may pass). Going down abandons those requests.
func (p *Proxy) onStall(s *backend.Server, waited time.Duration, n int) {
	s.MarkDown("passive: no response head for " + waited.Round(time.Millisecond).String() + " while " +
		strconv.Itoa(n) + " requests waited")
}
