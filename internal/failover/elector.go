package failover

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Switch is one change of a group's active server.
type Switch struct {
	At     time.Time `json:"at"`
	Group  string    `json:"group"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
	Kind   string    `json:"kind"`
	By     string    `json:"by"`
	Epoch  uint64    `json:"epoch"`
}

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

// Elector holds one group's active server. The hot path reads Active, an
// atomic load; decisions are serialised under a mutex. An Elector outlives
// config reloads so that a reload causes no spurious switch.
type Elector struct {
	group    string
	onSwitch func(Switch)

	active atomic.Pointer[string]
	epoch  atomic.Uint64

	mu      sync.Mutex
	view    View
	hold    bool
	last    Decision
	timer   *time.Timer
	history []Switch
}

// NewElector returns an elector for group; onSwitch is called, under the
// elector's lock, after each switch and must not call back into it.
func NewElector(group string, onSwitch func(Switch)) *Elector {
	e := &Elector{group: group, onSwitch: onSwitch}
	e.active.Store(new(string))
	return e
}

// Active returns the name of the active server, "" when none.
func (e *Elector) Active() string { return *e.active.Load() }

// Epoch counts switches; it only grows.
func (e *Elector) Epoch() uint64 { return e.epoch.Load() }

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
	if e.timer != nil {
		e.timer.Stop()
	}
}

func (e *Elector) decideLocked(by string, failbackNow bool) Decision {
	if e.view == nil {
		return Decision{}
	}
	cands, pol := e.view()
	cur := e.Active()
	d := Decide(Input{Candidates: cands, Current: cur, Hold: e.hold, FailbackNow: failbackNow, Policy: pol, Now: time.Now()})
	if d.Changed && e.hold {
		// The held server failed or the operator failed back: the hold ends.
		e.hold = false
	}
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	if !d.Recheck.IsZero() {
		e.timer = time.AfterFunc(time.Until(d.Recheck), func() { e.Evaluate("failback timer") })
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
	e.active.Store(&d.Active)
	sw := Switch{At: time.Now(), Group: e.group, From: from, To: d.Active, Reason: d.Reason, Kind: d.Kind, By: by, Epoch: e.epoch.Add(1)}
	if len(e.history) == historySize {
		copy(e.history, e.history[1:])
		e.history = e.history[:historySize-1]
	}
	e.history = append(e.history, sw)
	if e.onSwitch != nil {
		e.onSwitch(sw)
	}
}
