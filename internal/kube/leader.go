package kube

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tandemproxy/tandem/internal/failover"
)

// The leader's rule over the replicas' views (documented in
// docs/kubernetes.md): a server is available when no live replica sees it
// down and at least one live replica has checked it; it has been up since
// the latest of their "up since" times. So a failure that one replica sees
// (a refused connection) moves every replica off the server, as fast as a
// single gateway would; a server comes back only when every replica sees it
// healthy. A replica is live while its heartbeat Lease is unexpired.

// liveView is a live replica's published view.
type liveView struct {
	identity string
	view     ReplicaView
}

// groupInput is everything the leader's decision for one group depends on.
type groupInput struct {
	group   string
	servers []string // priority order, from the leader's routing table
	policy  failover.Policy
	prev    Decision
	views   []liveView
	asks    []request // operators' requests through the API (Ask), not a replica's
	leader  string
	revoke  time.Duration
	now     time.Time
}

// aggregate is the leader's view of one server.
type aggregate struct {
	up     bool
	since  time.Time
	reason string // why it is down, and who saw it
}

func aggregateViews(in groupInput) map[string]aggregate {
	out := make(map[string]aggregate, len(in.servers))
	for _, name := range in.servers {
		a := aggregate{up: true}
		seen := false
		for _, v := range in.views {
			sv, ok := v.view.Groups[in.group].Servers[name]
			if !ok {
				continue
			}
			seen = true
			if !sv.Up {
				if a.up {
					a.reason = strings.TrimSpace(sv.Reason + " (seen by " + v.identity + ")")
				}
				a.up = false
			}
			if sv.Since.After(a.since) {
				a.since = sv.Since
			}
		}
		if !seen {
			a.up, a.reason = false, "no replica has checked it yet"
		}
		out[name] = a
	}
	return out
}

// decideGroup is the leader's decision for one group: pure, table-tested.
// It carries out the operator requests, then runs the policy (Decide) over
// the aggregated views, and makes a switch away from a server two-phase.
func decideGroup(in groupInput) (Decision, map[string]aggregate) {
	d := in.prev
	d.Leader = in.leader
	agg := aggregateViews(in)
	cands := func() []failover.Candidate {
		cs := make([]failover.Candidate, len(in.servers))
		for i, n := range in.servers {
			dr := d.drained(n)
			cs[i] = failover.Candidate{Name: n, Up: agg[n].up && !dr, Drained: dr, UpSince: agg[n].since}
		}
		return cs
	}
	failbackNow := false
	var switchTo, by string
	var failbacks []string // IDs of this round's failback requests
	type asked struct {
		via string
		rq  request
	}
	var all []asked
	for _, v := range in.views {
		for _, rq := range v.view.Requests {
			all = append(all, asked{v.identity, rq})
		}
	}
	for _, rq := range in.asks {
		all = append(all, asked{"the API", rq})
	}
	for _, x := range all {
		via, rq := x.via, x.rq
		if rq.Group != in.group {
			continue
		}
		if _, done := d.outcome(rq.ID); done {
			continue
		}
		r := result{ID: rq.ID}
		a := rq.Action
		switch a.Kind {
		case failover.ActionFailback:
			failbackNow, by = true, a.By+" (via "+via+")"
			d.Hold = false
			failbacks = append(failbacks, rq.ID)
		case failover.ActionSwitch:
			switch {
			case !slices.Contains(in.servers, a.Server):
				r.Err = fmt.Sprintf("%v: %q", failover.ErrNoSuchServer, a.Server)
			case !agg[a.Server].up || d.drained(a.Server):
				r.Err = fmt.Sprintf("%v: %s", failover.ErrServerDown, a.Server)
			case d.Active == a.Server || d.Revoking && d.To == a.Server:
				d.Hold = true
				r.Nothing, r.Msg = true, a.Server+" is already active"
			default:
				d.Hold = true
				switchTo, by = a.Server, a.By+" (via "+via+")"
			}
		case actionDrain, actionUndrain:
			on := a.Kind == actionDrain
			switch {
			case !slices.Contains(in.servers, a.Server):
				r.Err = fmt.Sprintf("%v: %q", failover.ErrNoSuchServer, a.Server)
			case d.drained(a.Server) == on:
				r.Nothing, r.Msg = true, a.Server+" is already "+map[bool]string{true: "drained", false: "in service"}[on]
			default:
				d.setDrained(a.Server, on)
				by = a.By + " (via " + via + ")"
			}
		default:
			r.Err = fmt.Sprintf("unknown action %q", a.Kind)
		}
		d.finish(r)
	}
	if switchTo != "" && d.drained(switchTo) {
		// Drained by a later request of the same round: no switch to it.
		switchTo, d.Hold = "", false
	}
	if d.Revoking {
		if switchTo != "" {
			// An operator redirects the switch under way; the grant still
			// waits for the acknowledgements of the revocation.
			d.To, d.Reason = switchTo, "switch requested by operator"
			d.Last.To, d.Last.Kind, d.Last.Reason, d.Last.By = switchTo, failover.KindOperator, d.Reason, by
		}
		if !allAcked(in, d.Epoch) && in.now.Before(d.RevokedAt.Add(in.revoke)) {
			return d, agg
		}
		// Phase two: grant the role, to the server chosen at revocation
		// while it is still available, else to whatever the policy picks.
		to := d.To
		if c := candidate(cands(), to); c == nil || !c.Up {
			to = failover.Decide(failover.Input{Candidates: cands(), Policy: in.policy, Now: in.now}).Active
			d.Hold = false // an operator's hold was on the server that failed
		}
		d.Active, d.Revoking, d.To, d.RevokedAt = to, false, "", time.Time{}
		d.Last.To = to
		if to == "" {
			d.Reason = "no server available"
		}
		return d, agg
	}
	if switchTo != "" {
		d.Reason = "switch requested by operator"
		return transition(d, switchTo, failover.KindOperator, d.Reason, by, !allAcked(in, d.Epoch), in.now), agg
	}
	res := failover.Decide(failover.Input{Candidates: cands(), Current: d.Active, Hold: d.Hold,
		FailbackNow: failbackNow, Policy: in.policy, Now: in.now})
	d.Pending, d.Recheck = res.Pending, res.Recheck
	if !res.Changed {
		d.Reason = res.Reason
		if len(failbacks) > 0 {
			// As Elector.Failback answers on a single gateway.
			d.Done = slices.Clone(d.Done)
			for i := range d.Done {
				if slices.Contains(failbacks, d.Done[i].ID) {
					d.Done[i].Nothing, d.Done[i].Msg = true, d.Active+" is already the preferred available server"
				}
			}
		}
		return d, agg
	}
	d.Hold = false // the held server failed, or an operator failed back
	reason := res.Reason
	if a, ok := agg[d.Active]; ok && !a.up && a.reason != "" {
		reason += ": " + a.reason
	} else if d.drained(d.Active) && !strings.Contains(reason, "drained") {
		reason += ": drained"
	}
	if by == "" {
		by = "leader " + in.leader
	}
	d.Reason = reason
	return transition(d, res.Active, res.Kind, reason, by, !allAcked(in, d.Epoch), in.now), agg
}

// allAcked reports whether every live replica adopted epoch.
func allAcked(in groupInput, epoch uint64) bool {
	for _, v := range in.views {
		if v.view.Groups[in.group].Ack < epoch {
			return false
		}
	}
	return true
}

// transition moves the role to "to" with a new epoch: at once when no
// server holds it and every replica knows that (behind is false), else by
// revoking first (phase one of two), so that a replica still routing on an
// older decision stops before another server is granted.
func transition(d Decision, to, kind, reason, by string, behind bool, now time.Time) Decision {
	from := d.Active
	if d.Revoking {
		from = d.Last.From
	}
	d.Epoch++
	d.Last = failover.Switch{At: now, From: from, To: to, Reason: reason, Kind: kind, By: by}
	if (from != "" || behind) && to != "" {
		d.Active, d.Revoking, d.To, d.RevokedAt = "", true, to, now
		return d
	}
	d.Active, d.Revoking, d.To, d.RevokedAt = to, false, "", time.Time{}
	return d
}

func candidate(cs []failover.Candidate, name string) *failover.Candidate {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// errOf turns a published outcome back into the error an operator action
// returns, so the admin API answers as it does for a single gateway.
func errOf(r result) error {
	switch {
	case r.Nothing:
		return fmt.Errorf("%w: %s", failover.ErrNothingToDo, r.Msg)
	case r.Err == "":
		return nil
	case strings.HasPrefix(r.Err, failover.ErrNoSuchServer.Error()):
		return fmt.Errorf("%w%s", failover.ErrNoSuchServer, strings.TrimPrefix(r.Err, failover.ErrNoSuchServer.Error()))
	case strings.HasPrefix(r.Err, failover.ErrServerDown.Error()):
		return fmt.Errorf("%w%s", failover.ErrServerDown, strings.TrimPrefix(r.Err, failover.ErrServerDown.Error()))
	}
	return errors.New(r.Err)
}
