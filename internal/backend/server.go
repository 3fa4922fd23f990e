// Package backend owns the identity and health state of one server and the
// registry that keeps that state across config reloads.
package backend

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// State is a server's health as the gateway sees it.
type State int32

const (
	// Unknown: not checked yet. Treated as available so that a gateway that
	// starts before its first check completes still serves.
	Unknown State = iota
	Up
	Down
)

func (s State) String() string {
	switch s {
	case Up:
		return "up"
	case Down:
		return "down"
	default:
		return "unknown"
	}
}

// Transition is one change of a server's state, published once per change.
type Transition struct {
	Server *Server
	From   State
	To     State
	Reason string
	At     time.Time
	// Abandoned counts the tries that were waiting for a response head
	// from a server that went down: interrupted, to be replayed elsewhere
	// or answered 502.
	Abandoned int
}

// CheckResult is the outcome of the latest active check.
type CheckResult struct {
	At      time.Time
	OK      bool
	Status  int
	Latency time.Duration
	Reason  string // failure class: refused, reset, timeout, status, body, error
	Detail  string // why it failed, or a body excerpt
}

// Key identifies a server across reloads: same group, name and address
// means same server, so its health survives.
type Key struct {
	Group, Name, Address string
	// Instance identifies what answers at Address when a source knows it
	// (a pod's UID): a new pod under the same name starts with fresh
	// health state. "" for static servers.
	Instance string
}

// Server is one instance of an application. The hot path only calls
// Available; everything else is for probers, passive detection and admin.
type Server struct {
	Key
	state   atomic.Int32
	drained atomic.Bool  // an operator took it out of service
	since   atomic.Int64 // unix nanoseconds of the last transition
	// heldUntil (unix nanoseconds) keeps a server that failed live traffic
	// down even if its checks pass: the checks are not what failed.
	heldUntil atomic.Int64
	heldWhy   atomic.Pointer[string]
	last      atomic.Pointer[CheckResult]

	// notify is called after every transition, outside any lock.
	notify func(Transition)
	kick   chan struct{}

	mu    sync.Mutex
	oks   int // consecutive passing checks
	fails int // consecutive failing checks
	// failPts weighs them: 2 a failure, 1 a weak one (see ReportCheck);
	// weakFails counts the weak ones.
	failPts, weakFails int
	failures           []time.Time // passive soft failures inside the window
	// ejections counts passive ejections in a row (see Ejection).
	ejections int

	conns Conns
	wait  waiting
}

func newServer(k Key, notify func(Transition)) *Server {
	s := &Server{Key: k, notify: notify, kick: make(chan struct{}, 1)}
	s.since.Store(time.Now().UnixNano())
	return s
}

// State returns the current health state.
func (s *Server) State() State { return State(s.state.Load()) }

// Available reports whether new traffic may go to the server.
func (s *Server) Available() bool { return State(s.state.Load()) != Down && !s.drained.Load() }

// Drained reports whether an operator took the server out of service.
func (s *Server) Drained() bool { return s.drained.Load() }

// SetDrained takes the server out of service (no new traffic; requests in
// flight finish) or puts it back. It reports whether that changed anything.
func (s *Server) SetDrained(on bool) bool { return s.drained.CompareAndSwap(!on, on) }

// Since returns when the server entered its current state.
func (s *Server) Since() time.Time { return time.Unix(0, s.since.Load()) }

// LastCheck returns the latest active check result, or nil.
func (s *Server) LastCheck() *CheckResult { return s.last.Load() }

// Conns returns the set of upgraded connections to this server.
func (s *Server) Conns() *Conns { return &s.conns }

// Kicked is signalled when passive detection wants an active check now.
func (s *Server) Kicked() <-chan struct{} { return s.kick }

// Kick asks the prober for an immediate check, without blocking.
func (s *Server) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// transition moves the state with a compare-and-swap so that concurrent
// reporters publish one transition, not two.
func (s *Server) transition(from, to State, reason string) bool {
	if from == to || !s.state.CompareAndSwap(int32(from), int32(to)) {
		return false
	}
	if to == Up {
		// Back in service: passive failures seen before it went down are
		// forgotten. Passing checks alone do not forget them, as traffic
		// may fail while the checks pass.
		s.mu.Lock()
		s.failures = s.failures[:0]
		s.mu.Unlock()
	}
	now := time.Now()
	s.since.Store(now.UnixNano())
	abandoned := 0
	if to == Down {
		abandoned = s.Abandon(false)
	}
	if s.notify != nil {
		s.notify(Transition{Server: s, From: from, To: to, Reason: reason, At: now, Abandoned: abandoned})
	}
	return true
}

// ReportCheck records an active check. The first check decides the state
// at once; after that, rise passing or fall failing checks in a row do.
func (s *Server) ReportCheck(r CheckResult, rise, fall int) {
	s.last.Store(&r)
	// A check that timed out while the server answered live traffic (a
	// response head came after the check began) is weak evidence: the
	// gateway's own load may have starved it. It counts half.
	weak := !r.OK && r.Reason == "timeout" && !r.At.IsZero() && s.AnsweredSince(r.At)
	s.mu.Lock()
	switch {
	case r.OK:
		s.oks, s.fails, s.failPts, s.weakFails = s.oks+1, 0, 0, 0
	case weak:
		s.fails, s.oks, s.failPts, s.weakFails = s.fails+1, 0, s.failPts+1, s.weakFails+1
	default:
		s.fails, s.oks, s.failPts = s.fails+1, 0, s.failPts+2
	}
	oks, fails, pts, weakN := s.oks, s.fails, s.failPts, s.weakFails
	s.mu.Unlock()
	cur := s.State()
	switch {
	case cur == Unknown && r.OK:
		s.transition(cur, Up, "first check passed")
	case cur == Unknown:
		s.transition(cur, Down, "first check failed: "+r.Detail)
	case cur == Down && !r.OK && s.heldUntil.Load() != 0:
		// The checks now agree the server is down (killed, frozen): their
		// passing again is evidence once more, and the hold ends.
		s.heldUntil.Store(0)
	case cur == Down && r.OK && oks >= rise:
		if time.Now().UnixNano() < s.heldUntil.Load() {
			return // taken out by its traffic; the hold ends by itself
		}
		s.transition(cur, Up, "check passed "+inARow(oks))
	case cur == Up && !r.OK && pts >= 2*fall:
		why := "check failed " + inARow(fails) + ": " + r.Detail
		if weakN > 0 {
			why += " (" + strconv.Itoa(weakN) + " timed out while its traffic was answered: counted half)"
		}
		s.transition(cur, Down, why)
	}
}

// Changing reports whether the server is between states (some checks
// disagree with its state), when probers use the fast interval.
func (s *Server) Changing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.State() {
	case Up:
		return s.fails > 0
	case Down:
		return true
	}
	return true
}

// MarkDown takes the server out at once (passive detection of a refused
// connection or a failed dial). It reports whether this call changed the state.
func (s *Server) MarkDown(reason string) bool {
	s.mu.Lock()
	s.oks = 0
	s.mu.Unlock()
	for {
		cur := s.State()
		if cur == Down {
			return false
		}
		if s.transition(cur, Down, reason) {
			s.Kick()
			return true
		}
	}
}

// Ejection is how long a server taken down by its live traffic (passive
// detection) stays down, whatever its checks say, as Envoy's outlier
// detection does: Base for the first ejection, one Base more for each
// repeated one, at most Max. One repeat is forgotten per Decay the server
// stays in service. Base 0: no hold.
type Ejection struct {
	Base, Max, Decay time.Duration
}

// Eject takes the server out at once for what its traffic showed (a
// refused connection, no progress, failures within a window) and holds
// it down for the ejection time. It reports whether the state changed.
func (s *Server) Eject(reason string, e Ejection) bool {
	if e.Base > 0 {
		now := time.Now()
		s.mu.Lock()
		if s.State() != Down {
			if e.Decay > 0 && s.State() == Up {
				s.ejections = max(0, s.ejections-int(now.Sub(s.Since())/e.Decay))
			}
			s.ejections++
			hold := min(e.Base*time.Duration(s.ejections), max(e.Max, e.Base))
			s.heldUntil.Store(now.Add(hold).UnixNano())
			why := fmt.Sprintf("ejected by its traffic %s: held down %v", inARow(s.ejections), hold)
			s.heldWhy.Store(&why)
			reason += "; " + why
		}
		s.mu.Unlock()
	}
	return s.MarkDown(reason)
}

// Failure records a timeout, a broken exchange or (when counted) a 5xx
// answer seen on live traffic; maxFails of them within window eject the
// server.
func (s *Server) Failure(reason string, maxFails int, window time.Duration, e Ejection) bool {
	if maxFails <= 0 {
		return false
	}
	now := time.Now()
	s.mu.Lock()
	keep := s.failures[:0]
	for _, t := range s.failures {
		if now.Sub(t) < window {
			keep = append(keep, t)
		}
	}
	s.failures = append(keep, now)
	n := len(s.failures)
	s.mu.Unlock()
	if n >= maxFails {
		return s.Eject(reason+" ("+strconv.Itoa(n)+" failures within "+window.String()+")", e)
	}
	return false
}

// HeldUntil returns when a hold after an ejection ends (zero if none).
func (s *Server) HeldUntil() time.Time {
	if n := s.heldUntil.Load(); n > time.Now().UnixNano() {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// HeldReason says why the server is held down ("" when it is not).
func (s *Server) HeldReason() string {
	if w := s.heldWhy.Load(); w != nil && !s.HeldUntil().IsZero() {
		return *w
	}
	return ""
}

// inARow says how many times in a row: "once", "3 times in a row".
func inARow(n int) string {
	if n == 1 {
		return "once"
	}
	return strconv.Itoa(n) + " times in a row"
}
