// Package failover decides which server of a group is active. Decide is a
// pure function over an immutable view; Elector keeps the little state a
// group needs between decisions (current active, operator holds, history).
package failover

import (
	"fmt"
	"time"
)

// Candidate is one server as the policy sees it, in priority order.
type Candidate struct {
	Name    string
	Up      bool      // available for traffic: healthy and not drained
	Drained bool      // taken out by an operator (Up is then false)
	UpSince time.Time // when it last became available
}

// Policy is a group's failback policy.
type Policy struct {
	Manual bool          // stay on the failover until an operator fails back
	After  time.Duration // auto: the preferred server must be up this long first
}

// Input is everything a decision depends on.
type Input struct {
	Candidates []Candidate // priority order: first is the master
	Current    string      // active server now, "" for none
	// Hold keeps Current while it is up even if a preferred server is
	// (an operator switched on purpose).
	Hold bool
	// FailbackNow is an operator's request to return to the preferred server.
	FailbackNow bool
	Policy      Policy
	Now         time.Time
}

// Kinds of switch, a small fixed set for metrics labels.
const (
	KindStart    = "start"    // first active server
	KindDown     = "down"     // the active server failed
	KindDrained  = "drained"  // an operator drained the active server
	KindRemoved  = "removed"  // the active server left the config
	KindFailback = "failback" // back to a preferred server
	KindOperator = "operator" // an operator switched
	KindNone     = "none"     // no server is available
)

// Decision is the active server and why.
type Decision struct {
	Active string
	Reason string
	Kind   string // one of the Kind constants, when Changed
	// Changed is true when Active differs from Input.Current.
	Changed bool
	// Recheck, when not zero, is when the decision may change with no new
	// event (a pending failback's delay ends).
	Recheck time.Time
	// Pending names a preferred server waiting for failback, if any.
	Pending string
}

// Decide picks the active server: the current one while it is up, unless
// the failback policy says to return to a preferred one; otherwise the first
// available in priority order.
func Decide(in Input) Decision {
	pref := -1
	cur := -1
	for i, c := range in.Candidates {
		if c.Up && pref < 0 {
			pref = i
		}
		if c.Name == in.Current {
			cur = i
		}
	}
	switch {
	case pref < 0:
		d := Decision{Reason: "no server available", Kind: KindNone}
		if in.Current != "" {
			d.Reason = fmt.Sprintf("%s is down and no other server is available", in.Current)
		}
		d.Changed = in.Current != ""
		return d
	case in.Current == "":
		return switchTo(in, pref, KindStart, "first available server")
	case cur < 0:
		return switchTo(in, pref, KindRemoved, fmt.Sprintf("%s was removed from the group", in.Current))
	case in.Candidates[cur].Drained:
		return switchTo(in, pref, KindDrained, fmt.Sprintf("%s was drained", in.Current))
	case !in.Candidates[cur].Up:
		return switchTo(in, pref, KindDown, fmt.Sprintf("%s is down", in.Current))
	case pref >= cur:
		// The current server is the best available one.
		return Decision{Active: in.Current, Reason: "current server is the preferred available one"}
	}
	// A server preferred to the current one is up: failback policy decides.
	p := in.Candidates[pref]
	stay := Decision{Active: in.Current, Pending: p.Name}
	switch {
	case in.FailbackNow:
		return switchTo(in, pref, KindFailback, fmt.Sprintf("failback to %s requested by operator", p.Name))
	case in.Hold:
		stay.Reason = fmt.Sprintf("held on %s by operator; %s waits for failback", in.Current, p.Name)
		return stay
	case in.Policy.Manual:
		stay.Reason = fmt.Sprintf("failback policy manual: %s waits for an operator", p.Name)
		return stay
	case in.Policy.After > 0:
		ready := p.UpSince.Add(in.Policy.After)
		if in.Now.Before(ready) {
			stay.Reason = fmt.Sprintf("%s must stay up %v before failback", p.Name, in.Policy.After)
			stay.Recheck = ready
			return stay
		}
		reason := fmt.Sprintf("failback: %s stayed up for %v", p.Name, in.Policy.After)
		if up := in.Now.Sub(p.UpSince); up > in.Policy.After+time.Second {
			// Up well before now: the delay is not what ended the wait
			// (an undrain, a hold that ended); the switch's by says what did.
			reason = fmt.Sprintf("failback: %s available, up for %v (failback after %v)", p.Name, up.Round(time.Second), in.Policy.After)
		}
		return switchTo(in, pref, KindFailback, reason)
	}
	return switchTo(in, pref, KindFailback, fmt.Sprintf("failback: %s is up again", p.Name))
}

func switchTo(in Input, i int, kind, reason string) Decision {
	name := in.Candidates[i].Name
	return Decision{Active: name, Reason: reason, Kind: kind, Changed: name != in.Current}
}
