package failover

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Switch is one change of a group's active server. With published
// decisions a switch has two phases: Revoking (the former server lost the
// role, no server holds it yet) and then the grant, which is the Switch
// that counts.
type Switch struct {
	At     time.Time `json:"at"`
	Group  string    `json:"group"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
	Kind   string    `json:"kind"`
	By     string    `json:"by"`
	Epoch  uint64    `json:"epoch"`
	// Revoking marks the first phase of a two-phase switch: From lost the
	// role, To is granted once every replica stopped sending to From.
	Revoking bool `json:"revoking,omitempty"`
}

// Committed is the decision every request of a group routes on. It is
// immutable; a new decision replaces it and closes the former one's Done.
type Committed struct {
	Active string // "" when no server holds the role
	Epoch  uint64
	// Revoking: a two-phase switch is under way: no server is active and
	// requests wait (a bounded time) for the grant rather than fail.
	Revoking bool
	// Fenced: this replica lost sight of the coordination state and sends
	// to no server until it sees a fresh decision.
	Fenced bool
	done   chan struct{}
}

// EpochOrZero is c's epoch, 0 for a nil decision.
func (c *Committed) EpochOrZero() uint64 {
	if c == nil {
		return 0
	}
	return c.Epoch
}

// Done is closed when a newer decision replaces c.
func (c *Committed) Done() <-chan struct{} { return c.done }

// Remote is the cluster side of an elector that follows published
// decisions: the leader decides, every replica adopts (Adopt). The elector
// hands it what a local elector would act on itself.
type Remote interface {
	// ViewChanged says this replica's view of the group changed (a health
	// transition, a drain): the leader must hear of it at once.
	ViewChanged(group, by string)
	// Request asks the leader to carry out an operator action on the
	// group and returns its outcome.
	Request(group string, a Action) error
}

// Action is an operator's request: switch to Server, or fail back.
type Action struct {
	Kind   string `json:"kind"` // ActionSwitch, ActionFailback
	Server string `json:"server,omitempty"`
	By     string `json:"by"`
}

// Operator actions that go through the committer.
const (
	ActionSwitch   = "switch"
	ActionFailback = "failback"
)

// Errors returned by operator actions.
var (
	ErrNoSuchServer = errors.New("no such server")
	ErrServerDown   = errors.New("server is not available")
	ErrNothingToDo  = errors.New("nothing to do")
)

// historySize bounds the switch history kept per group.
const historySize = 64

// View returns the group's candidates in priority order and its policy;
// the owner replaces it on every reload.
type View func() ([]Candidate, Policy)

// Elector holds one group's committed decision. The hot path reads
// Current, an atomic load; decisions are serialised under a mutex. An
// Elector outlives config reloads so that a reload causes no spurious
// switch.
//
// A local elector is its own committer: it runs the policy (Decide) and
// commits the result. With a Remote it is a follower: only the cluster's
// leader decides, and the elector adopts what the leader published.
type Elector struct {
	group    string
	onSwitch func(Switch)
	clock    Clock

	cur    atomic.Pointer[Committed]
	remote atomic.Pointer[remoteBox]

	mu   sync.Mutex
	view View
	hold bool
	last Decision
	// stopTimer cancels the pending failback timer (nil when none).
	stopTimer func() bool
	history   []Switch
}

type remoteBox struct{ Remote }

// NewElector returns an elector for group. onSwitch is called after each
// switch, in the order of the switches, under the elector's lock, with
// the decision already in force: it must not call back into the elector,
// nor block, as it holds up whoever caused the switch (a request that saw
// a server fail); the gateway queues its switch handling.
func NewElector(group string, onSwitch func(Switch), opts ...Option) *Elector {
	e := &Elector{group: group, onSwitch: onSwitch, clock: SystemClock{}}
	for _, o := range opts {
		o(e)
	}
	e.cur.Store(&Committed{done: make(chan struct{})})
	return e
}

// Current returns the committed decision.
func (e *Elector) Current() *Committed { return e.cur.Load() }

// Active returns the name of the active server, "" when none.
func (e *Elector) Active() string { return e.cur.Load().Active }

// Epoch counts switches; it only grows.
func (e *Elector) Epoch() uint64 { return e.cur.Load().Epoch }

// Local reports whether this elector commits its own decisions, so that a
// request may fall back on its own to the next server while the active one
// is down (the elector is switching to it in the same breath). A follower
// never does: only the leader's published decision picks a server.
func (e *Elector) Local() bool { return e.remote.Load() == nil }

// Follow makes the elector a follower of r (nil: local again). Until the
// first Adopt it keeps the decision it has.
func (e *Elector) Follow(r Remote) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r == nil {
		e.remote.Store(nil)
		return
	}
	e.remote.Store(&remoteBox{r})
	e.stopTimerLocked()
}

// Await waits until a decision newer than c is committed, for at most
// wait, or until also is closed (nil: never), and returns the decision
// then in force.
func (e *Elector) Await(ctx context.Context, c *Committed, wait time.Duration, also <-chan struct{}) *Committed {
	expired := make(chan struct{})
	stop := e.clock.AfterFunc(wait, func() { close(expired) })
	defer stop()
	select {
	case <-c.done:
	case <-expired:
	case <-ctx.Done():
	case <-also:
	}
	return e.cur.Load()
}

// commitLocked installs c as the decision in force.
func (e *Elector) commitLocked(c Committed) {
	c.done = make(chan struct{})
	old := e.cur.Swap(&c)
	close(old.done)
}

// SetView installs the group's current servers and policy and re-decides.
func (e *Elector) SetView(v View, by string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.view = v
	e.decideLocked(by, false)
}

// Evaluate re-decides after a health transition or a timer.
func (e *Elector) Evaluate(by string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.decideLocked(by, false)
}

// Failback returns to the preferred server now, whatever the policy.
func (e *Elector) Failback(by string) error {
	if r := e.remote.Load(); r != nil {
		return r.Request(e.group, Action{Kind: ActionFailback, By: by})
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.view == nil {
		return ErrNothingToDo
	}
	e.hold = false
	d := e.decideLocked(by, true)
	if !d.Changed {
		return fmt.Errorf("%w: %s is already the preferred available server", ErrNothingToDo, e.Active())
	}
	return nil
}

// SwitchTo makes name active and holds it there (no automatic failback)
// until it fails or an operator fails back.
func (e *Elector) SwitchTo(name, by string) error {
	if r := e.remote.Load(); r != nil {
		return r.Request(e.group, Action{Kind: ActionSwitch, Server: name, By: by})
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.view == nil {
		return ErrNothingToDo
	}
	cands, _ := e.view()
	for _, c := range cands {
		if c.Name != name {
			continue
		}
		if !c.Up {
			return fmt.Errorf("%w: %s", ErrServerDown, name)
		}
		if e.Active() == name {
			e.hold = true
			return fmt.Errorf("%w: %s is already active", ErrNothingToDo, name)
		}
		e.hold = true
		e.apply(Decision{Active: name, Reason: "switch requested by operator", Kind: KindOperator, Changed: true}, by)
		return nil
	}
	return fmt.Errorf("%w: %q", ErrNoSuchServer, name)
}

// Status returns the latest decision and whether an operator hold is on.
func (e *Elector) Status() (Decision, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last, e.hold
}

// History returns the recent switches, oldest first.
func (e *Elector) History() []Switch {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Switch(nil), e.history...)
}

// Stop cancels a pending failback timer.
func (e *Elector) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopTimerLocked()
}

func (e *Elector) stopTimerLocked() {
	if e.stopTimer != nil {
		e.stopTimer()
		e.stopTimer = nil
	}
}

func (e *Elector) decideLocked(by string, failbackNow bool) Decision {
	if e.view == nil {
		return Decision{}
	}
	if r := e.remote.Load(); r != nil {
		// A follower's view goes to the leader, which decides.
		r.ViewChanged(e.group, by)
		return Decision{}
	}
	cands, pol := e.view()
	cur := e.Active()
	now := e.clock.Now()
	d := Decide(Input{Candidates: cands, Current: cur, Hold: e.hold, FailbackNow: failbackNow, Policy: pol, Now: now})
	if d.Changed && e.hold {
		// The held server failed or the operator failed back: the hold ends.
		e.hold = false
	}
	e.stopTimerLocked()
	if !d.Recheck.IsZero() {
		e.stopTimer = e.clock.AfterFunc(d.Recheck.Sub(now), func() { e.Evaluate("failback timer") })
	}
	e.apply(d, by)
	return d
}

func (e *Elector) apply(d Decision, by string) {
	from := e.Active()
	e.last = d
	if !d.Changed {
		return
	}
	epoch := e.Epoch() + 1
	e.commitLocked(Committed{Active: d.Active, Epoch: epoch})
	e.recordLocked(Switch{At: e.clock.Now(), Group: e.group, From: from, To: d.Active, Reason: d.Reason, Kind: d.Kind, By: by, Epoch: epoch})
}

// recordLocked keeps sw in the history (unless it is a revocation, the
// first half of a switch still to come) and fires the switch handling.
func (e *Elector) recordLocked(sw Switch) {
	if !sw.Revoking {
		if len(e.history) == historySize {
			copy(e.history, e.history[1:])
			e.history = e.history[:historySize-1]
		}
		e.history = append(e.history, sw)
	}
	if e.onSwitch != nil {
		e.onSwitch(sw)
	}
}

// Published is a decision as the cluster's leader published it.
type Published struct {
	Committed
	Hold    bool
	Pending string    // preferred server waiting for failback
	Recheck time.Time // when a pending failback happens
	Reason  string
	// Last is the switch that produced this decision (zero if none).
	Last Switch
}

// Adopt installs a decision the leader published, if it is newer than the
// one in force or changes this replica's fencing, and fires the same switch
// handling a local decision does. It reports whether anything changed.
func (e *Elector) Adopt(p Published) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := e.Current()
	newer := p.Epoch > cur.Epoch || p.Epoch == cur.Epoch && cur.Revoking && !p.Revoking
	if !newer && p.Fenced == cur.Fenced {
		if p.Epoch == cur.Epoch {
			e.hold, e.last.Pending, e.last.Recheck, e.last.Reason = p.Hold, p.Pending, p.Recheck, p.Reason
		}
		return false
	}
	if !newer {
		// Only the fence changes: the decision itself stands.
		next := *cur
		next.Fenced = p.Fenced
		e.commitLocked(next)
		if p.Fenced && cur.Active != "" {
			// A fenced replica cannot know whether the leader moved the
			// role meanwhile: its websockets to the active server close
			// (1012) as at a revocation, so their clients reconnect
			// through a replica that knows.
			e.recordLocked(Switch{At: e.clock.Now(), Group: e.group, From: cur.Active, Epoch: cur.Epoch, Revoking: true,
				Reason: "this replica is fenced: the coordination state is out of reach", Kind: KindNone})
		}
		return true
	}
	from := cur.Active
	e.commitLocked(p.Committed)
	e.hold = p.Hold
	e.last = Decision{Active: p.Active, Reason: p.Reason, Pending: p.Pending, Recheck: p.Recheck}
	if from == p.Active && !p.Revoking && !cur.Revoking {
		return true
	}
	sw := p.Last
	sw.Group, sw.Epoch, sw.Revoking = e.group, p.Epoch, p.Revoking
	if sw.At.IsZero() {
		sw.At = e.clock.Now()
	}
	if from != "" {
		// What this replica routed on loses the role, whatever the leader
		// says it moved from: a replica that missed decisions closes the
		// websockets it really has.
		sw.From = from
	}
	// Else: the grant after a revocation this replica adopted; the switch
	// is from the server the revocation took the role from (p.Last.From).
	sw.To = cmp.Or(sw.To, p.Active)
	if p.Revoking && from == "" {
		return true // nothing to revoke on this replica
	}
	e.recordLocked(sw)
	return true
}
