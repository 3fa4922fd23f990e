package kube

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/failover"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

const testRevoke = 5 * time.Second

// servers parses "a+ b- c+": up (since t0-1h) or down (reason "refused").
func servers(spec string) map[string]serverView {
	m := map[string]serverView{}
	for _, f := range strings.Fields(spec) {
		name, state := f[:len(f)-1], f[len(f)-1]
		switch state {
		case '+':
			m[name] = serverView{Up: true, Since: t0.Add(-time.Hour)}
		case '-':
			m[name] = serverView{Since: t0.Add(-time.Minute), Reason: "refused"}
		default:
			panic("bad server spec " + f)
		}
	}
	return m
}

// lv is replica id's live view of group "g".
func lv(id string, ack uint64, spec string, reqs ...request) liveView {
	return liveView{identity: id, view: ReplicaView{
		Groups:   map[string]groupView{"g": {Ack: ack, Servers: servers(spec)}},
		Requests: reqs,
	}}
}

// input is group "g" with servers a, b, c (in priority order), auto
// failback at once, led by "L".
func input(prev Decision, now time.Time, views ...liveView) groupInput {
	return groupInput{group: "g", servers: []string{"a", "b", "c"}, prev: prev, views: views,
		leader: "L", revoke: testRevoke, now: now}
}

// shape is what a decision says about the role.
type shape struct {
	Active   string
	Epoch    uint64
	Revoking bool
	To       string
	From     string // Last.From
	LastTo   string // Last.To
}

func shapeOf(d Decision) shape {
	return shape{Active: d.Active, Epoch: d.Epoch, Revoking: d.Revoking, To: d.To, From: d.Last.From, LastTo: d.Last.To}
}

func TestAggregateViews(t *testing.T) {
	early, late := t0.Add(-2*time.Hour), t0.Add(-time.Minute)
	view := func(id string, svs map[string]serverView) liveView {
		return liveView{identity: id, view: ReplicaView{Groups: map[string]groupView{"g": {Servers: svs}}}}
	}
	tests := []struct {
		name  string
		views []liveView
		want  map[string]aggregate
	}{
		{
			name: "up in every view: up since the latest",
			views: []liveView{
				view("r1", map[string]serverView{"a": {Up: true, Since: early}, "b": {Up: true, Since: late}, "c": {Up: true, Since: early}}),
				view("r2", map[string]serverView{"a": {Up: true, Since: late}, "b": {Up: true, Since: early}, "c": {Up: true, Since: early}}),
			},
			want: map[string]aggregate{"a": {up: true, since: late}, "b": {up: true, since: late}, "c": {up: true, since: early}},
		},
		{
			name: "down in one view is down, named for the replica that saw it",
			views: []liveView{
				view("r1", map[string]serverView{"a": {Up: true, Since: early}, "b": {Up: true, Since: early}, "c": {Up: true, Since: early}}),
				view("r2", map[string]serverView{"a": {Up: false, Since: late, Reason: "connection refused"}, "b": {Up: true, Since: early}, "c": {Up: true, Since: early}}),
			},
			want: map[string]aggregate{
				"a": {up: false, since: late, reason: "connection refused (seen by r2)"},
				"b": {up: true, since: early}, "c": {up: true, since: early},
			},
		},
		{
			name: "down in two views: the first replica's reason",
			views: []liveView{
				view("r1", map[string]serverView{"a": {Since: early, Reason: "timeout"}, "b": {Up: true, Since: early}, "c": {Up: true, Since: early}}),
				view("r2", map[string]serverView{"a": {Since: late, Reason: "refused"}, "b": {Up: true, Since: early}, "c": {Up: true, Since: early}}),
			},
			want: map[string]aggregate{
				"a": {up: false, since: late, reason: "timeout (seen by r1)"},
				"b": {up: true, since: early}, "c": {up: true, since: early},
			},
		},
		{
			name: "a view without the server does not count; one view that has it decides",
			views: []liveView{
				view("r1", map[string]serverView{"a": {Up: true, Since: early}, "b": {Up: true, Since: early}}),
				view("r2", map[string]serverView{"a": {Up: true, Since: early}, "c": {Up: true, Since: late}}),
			},
			want: map[string]aggregate{"a": {up: true, since: early}, "b": {up: true, since: early}, "c": {up: true, since: late}},
		},
		{
			name: "a server no view has is down",
			views: []liveView{
				view("r1", map[string]serverView{"a": {Up: true, Since: early}}),
				{identity: "r2", view: ReplicaView{Groups: map[string]groupView{"other": {Servers: servers("b+ c+")}}}},
			},
			want: map[string]aggregate{
				"a": {up: true, since: early},
				"b": {reason: "no replica has checked it yet"},
				"c": {reason: "no replica has checked it yet"},
			},
		},
		{
			name: "no live view: every server is down",
			want: map[string]aggregate{
				"a": {reason: "no replica has checked it yet"},
				"b": {reason: "no replica has checked it yet"},
				"c": {reason: "no replica has checked it yet"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := aggregateViews(input(Decision{}, t0, tt.views...))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("aggregateViews:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDecideGroupFirstDecision(t *testing.T) {
	tests := []struct {
		name  string
		views []liveView
		want  shape
		kind  string
	}{
		{
			name:  "the master is up",
			views: []liveView{lv("r1", 0, "a+ b+ c+"), lv("r2", 0, "a+ b+ c+")},
			want:  shape{Active: "a", Epoch: 1, LastTo: "a"},
			kind:  failover.KindStart,
		},
		{
			name:  "the master is down in one view",
			views: []liveView{lv("r1", 0, "a+ b+ c+"), lv("r2", 0, "a- b+ c+")},
			want:  shape{Active: "b", Epoch: 1, LastTo: "b"},
			kind:  failover.KindStart,
		},
		{
			name:  "the master is checked by no view",
			views: []liveView{lv("r1", 0, "b+ c+")},
			want:  shape{Active: "b", Epoch: 1, LastTo: "b"},
			kind:  failover.KindStart,
		},
		{
			name:  "no server available: no epoch spent",
			views: []liveView{lv("r1", 0, "a- b- c-")},
			want:  shape{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := decideGroup(input(Decision{}, t0, tt.views...))
			if s := shapeOf(got); s != tt.want {
				t.Errorf("decision %+v, want %+v", s, tt.want)
			}
			if got.Last.Kind != tt.kind {
				t.Errorf("Last.Kind %q, want %q", got.Last.Kind, tt.kind)
			}
			if !got.RevokedAt.IsZero() {
				t.Errorf("RevokedAt %v on a first decision", got.RevokedAt)
			}
			if got.Leader != "L" {
				t.Errorf("Leader %q, want L", got.Leader)
			}
		})
	}
}

// step is one decision in a sequence: its input views at t0+at, and what
// it must decide; check, if set, looks closer.
type step struct {
	at    time.Duration
	views []liveView
	want  shape
	check func(t *testing.T, d Decision)
}

func runSteps(t *testing.T, prev Decision, pol failover.Policy, steps []step) Decision {
	t.Helper()
	d := prev
	for i, st := range steps {
		in := input(d, t0.Add(st.at), st.views...)
		in.policy = pol
		next, _ := decideGroup(in)
		if s := shapeOf(next); s != st.want {
			t.Fatalf("step %d: decision %+v, want %+v", i, s, st.want)
		}
		if next.Epoch < d.Epoch {
			t.Fatalf("step %d: epoch went from %d down to %d", i, d.Epoch, next.Epoch)
		}
		if st.check != nil {
			st.check(t, next)
		}
		d = next
	}
	return d
}

func TestDecideGroupSequences(t *testing.T) {
	// The active server a fails in r1's view only.
	revocation := step{
		views: []liveView{lv("r1", 3, "a- b+ c+"), lv("r2", 3, "a+ b+ c+")},
		want:  shape{Epoch: 4, Revoking: true, To: "b", From: "a", LastTo: "b"},
		check: func(t *testing.T, d Decision) {
			if !d.RevokedAt.Equal(t0) {
				t.Errorf("RevokedAt %v, want %v", d.RevokedAt, t0)
			}
			if d.Last.Kind != failover.KindDown || !strings.Contains(d.Reason, "refused (seen by r1)") {
				t.Errorf("Last.Kind %q, Reason %q: want a down switch naming r1's view", d.Last.Kind, d.Reason)
			}
		},
	}
	granted := func(to string) shape { return shape{Active: to, Epoch: 4, From: "a", LastTo: to} }
	stillRevoking := revocation.want
	noRevokedAt := func(t *testing.T, d Decision) {
		if !d.RevokedAt.IsZero() || d.To != "" {
			t.Errorf("granted decision keeps RevokedAt %v, To %q", d.RevokedAt, d.To)
		}
	}
	onA := Decision{Active: "a", Epoch: 3}

	tests := []struct {
		name  string
		prev  Decision
		pol   failover.Policy
		steps []step
	}{
		{
			name: "grant once every view acknowledged the revocation",
			prev: onA,
			steps: []step{
				revocation,
				{at: time.Second, views: []liveView{lv("r1", 3, "a- b+ c+"), lv("r2", 3, "a+ b+ c+")}, want: stillRevoking},
				{at: 2 * time.Second, views: []liveView{lv("r1", 4, "a- b+ c+"), lv("r2", 3, "a+ b+ c+")}, want: stillRevoking},
				{at: 3 * time.Second, views: []liveView{lv("r1", 4, "a- b+ c+"), lv("r2", 4, "a+ b+ c+")}, want: granted("b"), check: noRevokedAt},
				// Steady afterwards: nothing changes.
				{at: 4 * time.Second, views: []liveView{lv("r1", 4, "a- b+ c+"), lv("r2", 4, "a- b+ c+")}, want: granted("b")},
			},
		},
		{
			name: "a live view without the group has not acknowledged",
			prev: onA,
			steps: []step{
				revocation,
				{at: time.Second, views: []liveView{lv("r1", 4, "a- b+ c+"), lv("r2", 4, "a+ b+ c+"),
					{identity: "r3", view: ReplicaView{Groups: map[string]groupView{}}}}, want: stillRevoking},
			},
		},
		{
			name: "grant at the revoke timeout without acknowledgements",
			prev: onA,
			steps: []step{
				revocation,
				{at: testRevoke - time.Nanosecond, views: []liveView{lv("r1", 3, "a- b+ c+"), lv("r2", 3, "a+ b+ c+")}, want: stillRevoking},
				{at: testRevoke, views: []liveView{lv("r1", 3, "a- b+ c+"), lv("r2", 3, "a+ b+ c+")}, want: granted("b"), check: noRevokedAt},
			},
		},
		{
			name: "the chosen server went down during the revocation: the policy's pick",
			prev: onA,
			steps: []step{
				revocation,
				{at: time.Second, views: []liveView{lv("r1", 4, "a- b- c+"), lv("r2", 4, "a+ b+ c+")}, want: granted("c")},
			},
		},
		{
			name: "no server left at the grant",
			prev: onA,
			steps: []step{
				revocation,
				{at: time.Second, views: []liveView{lv("r1", 4, "a- b- c-"), lv("r2", 4, "a+ b+ c+")}, want: granted(""),
					check: func(t *testing.T, d Decision) {
						if d.Reason != "no server available" {
							t.Errorf("Reason %q", d.Reason)
						}
					}},
			},
		},
		{
			name: "no server available: no revocation phase, and the next server is granted at once",
			prev: Decision{Active: "a", Epoch: 2},
			steps: []step{
				{views: []liveView{lv("r1", 2, "a- b- c-"), lv("r2", 2, "a+ b- c-")},
					want: shape{Epoch: 3, From: "a"},
					check: func(t *testing.T, d Decision) {
						if d.Last.Kind != failover.KindNone {
							t.Errorf("Last.Kind %q, want %q", d.Last.Kind, failover.KindNone)
						}
					}},
				{at: time.Second, views: []liveView{lv("r1", 2, "a- b- c-"), lv("r2", 3, "a- b- c-")}, want: shape{Epoch: 3, From: "a"}},
				{at: 2 * time.Second, views: []liveView{lv("r1", 3, "a- b+ c-"), lv("r2", 3, "a- b+ c-")},
					want: shape{Active: "b", Epoch: 4, LastTo: "b"}},
				// a is back: failback (auto) is two-phase again.
				{at: 3 * time.Second, views: []liveView{lv("r1", 4, "a+ b+ c-"), lv("r2", 4, "a+ b+ c-")},
					want: shape{Epoch: 5, Revoking: true, To: "a", From: "b", LastTo: "a"}},
			},
		},
		{
			// r2 never adopted the no-server epoch: it may still route on
			// a, so b is granted only once it acknowledged.
			name: "a server back before every replica knew there was none: two-phase",
			prev: Decision{Active: "a", Epoch: 2},
			steps: []step{
				{views: []liveView{lv("r1", 2, "a- b- c-"), lv("r2", 2, "a+ b- c-")}, want: shape{Epoch: 3, From: "a"}},
				{at: time.Second, views: []liveView{lv("r1", 3, "a- b+ c-"), lv("r2", 2, "a- b+ c-")},
					want: shape{Epoch: 4, Revoking: true, To: "b", LastTo: "b"}},
				{at: 2 * time.Second, views: []liveView{lv("r1", 4, "a- b+ c-"), lv("r2", 4, "a- b+ c-")},
					want: shape{Active: "b", Epoch: 4, LastTo: "b"}},
			},
		},
		{
			// Phase two waits for the acknowledgements whatever asked for
			// the switch (docs/kubernetes.md, "Two-phase switch").
			name: "an operator switch during a revocation still waits for the acknowledgements",
			prev: onA,
			steps: []step{
				revocation,
				{at: time.Second, views: []liveView{
					lv("r1", 4, "a- b+ c+", request{ID: "q1", Group: "g", Action: failover.Action{Kind: failover.ActionSwitch, Server: "c", By: "alice"}}),
					lv("r2", 3, "a+ b+ c+")},
					want: shape{Epoch: 4, Revoking: true, To: "c", From: "a", LastTo: "c"},
					check: func(t *testing.T, d Decision) {
						if r, ok := d.outcome("q1"); !ok || errOf(r) != nil {
							t.Errorf("outcome of q1: %+v, %v; want a success", r, ok)
						}
						if !d.Hold {
							t.Errorf("no hold after an operator switch")
						}
					}},
				{at: 2 * time.Second, views: []liveView{lv("r1", 4, "a- b+ c+"), lv("r2", 4, "a+ b+ c+")},
					want: granted("c"),
					check: func(t *testing.T, d Decision) {
						if d.Last.Kind != failover.KindOperator || d.Last.By != "alice (via r1)" {
							t.Errorf("Last %+v: want the operator's switch", d.Last)
						}
					}},
			},
		},
		{
			name: "a switch target drained by a later request of the same round gets no traffic",
			prev: Decision{Active: "a", Epoch: 5},
			steps: []step{
				{views: []liveView{
					lv("r1", 5, "a+ b+ c+", request{ID: "q1", Group: "g", Action: failover.Action{Kind: failover.ActionSwitch, Server: "c", By: "alice"}}),
					lv("r2", 5, "a+ b+ c+", request{ID: "q2", Group: "g", Action: failover.Action{Kind: actionDrain, Server: "c", By: "bob"}})},
					want: shape{Active: "a", Epoch: 5},
					check: func(t *testing.T, d Decision) {
						if !reflect.DeepEqual(d.Drained, []string{"c"}) || d.Hold {
							t.Errorf("Drained %v, Hold %v; want [c], no hold", d.Drained, d.Hold)
						}
					}},
			},
		},
		{
			// The hold is on the server the operator chose; when another
			// one is granted it ends, as on a single gateway.
			name: "the held target failed before the grant: the hold ends",
			prev: Decision{Active: "b", Epoch: 3},
			steps: []step{
				{views: []liveView{lv("r1", 3, "a- b+ c+", request{ID: "q1", Group: "g", Action: failover.Action{Kind: failover.ActionSwitch, Server: "c", By: "alice"}})},
					want: shape{Epoch: 4, Revoking: true, To: "c", From: "b", LastTo: "c"}},
				{at: time.Second, views: []liveView{lv("r1", 4, "a- b+ c-")},
					want: shape{Active: "b", Epoch: 4, From: "b", LastTo: "b"},
					check: func(t *testing.T, d Decision) {
						if d.Hold {
							t.Errorf("hold kept on b, which no operator chose")
						}
					}},
				// The master is back: auto failback, not held on b.
				{at: 2 * time.Second, views: []liveView{lv("r1", 4, "a+ b+ c-")},
					want: shape{Epoch: 5, Revoking: true, To: "a", From: "b", LastTo: "a"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, tt.prev, tt.pol, tt.steps)
		})
	}
}

func TestDecideGroupOperatorRequests(t *testing.T) {
	act := func(kind, server string) failover.Action {
		return failover.Action{Kind: kind, Server: server, By: "alice"}
	}
	old := make([]result, doneSize)
	for i := range old {
		old[i] = result{ID: fmt.Sprintf("old-%d", i)}
	}
	tests := []struct {
		name    string
		prev    Decision
		pol     failover.Policy
		servers string // r1's view; "a+ b+ c+" if empty
		group   string // of the request; "g" if empty
		action  failover.Action
		want    shape
		hold    bool
		drained []string
		kind    string // Last.Kind, when the request caused a switch
		errIs   error  // what errOf of the outcome is; nil for a success
		errHas  string
		notDone bool // the request is not carried out
		unacked bool // r1 did not acknowledge prev's epoch
	}{
		{
			name:   "switch to an up server: held, revocation to it",
			prev:   Decision{Active: "a", Epoch: 5},
			action: act(failover.ActionSwitch, "b"),
			want:   shape{Epoch: 6, Revoking: true, To: "b", From: "a", LastTo: "b"},
			hold:   true, kind: failover.KindOperator,
		},
		{
			name:    "switch to a down server",
			prev:    Decision{Active: "a", Epoch: 5},
			servers: "a+ b+ c-",
			action:  act(failover.ActionSwitch, "c"),
			want:    shape{Active: "a", Epoch: 5},
			errIs:   failover.ErrServerDown, errHas: "not available",
		},
		{
			name:    "switch to a drained server",
			prev:    Decision{Active: "a", Epoch: 5, Drained: []string{"b"}},
			action:  act(failover.ActionSwitch, "b"),
			want:    shape{Active: "a", Epoch: 5},
			drained: []string{"b"},
			errIs:   failover.ErrServerDown, errHas: "not available",
		},
		{
			name:   "switch to the active server: nothing to do, but held",
			prev:   Decision{Active: "a", Epoch: 5},
			action: act(failover.ActionSwitch, "a"),
			want:   shape{Active: "a", Epoch: 5},
			hold:   true,
			errIs:  failover.ErrNothingToDo, errHas: "already active",
		},
		{
			name:    "switch to the server a revocation is for: nothing to do",
			prev:    Decision{Epoch: 5, Revoking: true, To: "b", RevokedAt: t0, Last: failover.Switch{From: "a", To: "b"}},
			action:  act(failover.ActionSwitch, "b"),
			want:    shape{Epoch: 5, Revoking: true, To: "b", From: "a", LastTo: "b"},
			hold:    true,
			errIs:   failover.ErrNothingToDo,
			unacked: true,
		},
		{
			name:   "switch to an unknown server",
			prev:   Decision{Active: "a", Epoch: 5},
			action: act(failover.ActionSwitch, "zz"),
			want:   shape{Active: "a", Epoch: 5},
			errIs:  failover.ErrNoSuchServer, errHas: `"zz"`,
		},
		{
			name:   "failback: hold cleared, back to the preferred server",
			prev:   Decision{Active: "b", Epoch: 5, Hold: true},
			action: act(failover.ActionFailback, ""),
			want:   shape{Epoch: 6, Revoking: true, To: "a", From: "b", LastTo: "a"},
			kind:   failover.KindFailback,
		},
		{
			name:   "failback overrides a manual policy",
			prev:   Decision{Active: "b", Epoch: 5},
			pol:    failover.Policy{Manual: true},
			action: act(failover.ActionFailback, ""),
			want:   shape{Epoch: 6, Revoking: true, To: "a", From: "b", LastTo: "a"},
			kind:   failover.KindFailback,
		},
		{
			// As Elector.Failback answers on a single gateway.
			name:   "failback while on the preferred server: nothing to do",
			prev:   Decision{Active: "a", Epoch: 5},
			action: act(failover.ActionFailback, ""),
			want:   shape{Active: "a", Epoch: 5},
			errIs:  failover.ErrNothingToDo,
		},
		{
			name:    "drain a server that is not active",
			prev:    Decision{Active: "a", Epoch: 5},
			action:  act(actionDrain, "b"),
			want:    shape{Active: "a", Epoch: 5},
			drained: []string{"b"},
		},
		{
			name:    "drain the active server: it is switched away from",
			prev:    Decision{Active: "a", Epoch: 5},
			action:  act(actionDrain, "a"),
			want:    shape{Epoch: 6, Revoking: true, To: "b", From: "a", LastTo: "b"},
			drained: []string{"a"},
			kind:    failover.KindDrained,
		},
		{
			name:    "drain a drained server: nothing to do",
			prev:    Decision{Active: "a", Epoch: 5, Drained: []string{"b"}},
			action:  act(actionDrain, "b"),
			want:    shape{Active: "a", Epoch: 5},
			drained: []string{"b"},
			errIs:   failover.ErrNothingToDo, errHas: "already drained",
		},
		{
			name:   "undrain the master: failback to it",
			prev:   Decision{Active: "b", Epoch: 5, Drained: []string{"a"}},
			action: act(actionUndrain, "a"),
			want:   shape{Epoch: 6, Revoking: true, To: "a", From: "b", LastTo: "a"},
			kind:   failover.KindFailback,
		},
		{
			name:   "undrain a server in service: nothing to do",
			prev:   Decision{Active: "a", Epoch: 5},
			action: act(actionUndrain, "b"),
			want:   shape{Active: "a", Epoch: 5},
			errIs:  failover.ErrNothingToDo, errHas: "already in service",
		},
		{
			name:   "drain an unknown server",
			prev:   Decision{Active: "a", Epoch: 5},
			action: act(actionDrain, "zz"),
			want:   shape{Active: "a", Epoch: 5},
			errIs:  failover.ErrNoSuchServer,
		},
		{
			name:   "unknown action",
			prev:   Decision{Active: "a", Epoch: 5},
			action: act("reboot", "a"),
			want:   shape{Active: "a", Epoch: 5},
			errHas: `unknown action "reboot"`,
		},
		{
			name:    "a request for another group is not this group's",
			prev:    Decision{Active: "a", Epoch: 5},
			group:   "other",
			action:  act(failover.ActionSwitch, "b"),
			want:    shape{Active: "a", Epoch: 5},
			notDone: true,
		},
		{
			name:   "a request already carried out is not carried out twice",
			prev:   Decision{Active: "a", Epoch: 5, Done: []result{{ID: "q1"}}},
			action: act(failover.ActionSwitch, "b"),
			want:   shape{Active: "a", Epoch: 5},
		},
		{
			name:    "outcomes are bounded: the oldest goes",
			prev:    Decision{Active: "a", Epoch: 5, Done: old},
			action:  act(actionDrain, "c"),
			want:    shape{Active: "a", Epoch: 5},
			drained: []string{"c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.servers
			if spec == "" {
				spec = "a+ b+ c+"
			}
			group := tt.group
			if group == "" {
				group = "g"
			}
			prevDone := append([]result(nil), tt.prev.Done...)
			ack := tt.prev.Epoch
			if tt.unacked {
				ack--
			}
			in := input(tt.prev, t0, lv("r1", ack, spec, request{ID: "q1", Group: group, Action: tt.action}))
			in.policy = tt.pol
			d, _ := decideGroup(in)
			if s := shapeOf(d); s != tt.want {
				t.Errorf("decision %+v, want %+v", s, tt.want)
			}
			if d.Hold != tt.hold {
				t.Errorf("Hold %v, want %v", d.Hold, tt.hold)
			}
			if len(d.Drained) != 0 || len(tt.drained) != 0 {
				if !reflect.DeepEqual(d.Drained, tt.drained) {
					t.Errorf("Drained %v, want %v", d.Drained, tt.drained)
				}
			}
			if d.Epoch > tt.prev.Epoch {
				if d.Last.Kind != tt.kind {
					t.Errorf("Last.Kind %q, want %q", d.Last.Kind, tt.kind)
				}
				if d.Last.By != "alice (via r1)" {
					t.Errorf("Last.By %q, want the operator via r1", d.Last.By)
				}
			}
			if !reflect.DeepEqual(tt.prev.Done, prevDone) {
				t.Errorf("the previous decision's outcomes were mutated: %v", tt.prev.Done)
			}
			if len(d.Done) > doneSize {
				t.Errorf("%d outcomes kept, at most %d", len(d.Done), doneSize)
			}
			r, ok := d.outcome("q1")
			if tt.notDone {
				if ok {
					t.Errorf("request of group %q carried out: %+v", group, r)
				}
				return
			}
			if !ok {
				t.Fatalf("no outcome for q1 in %v", d.Done)
			}
			if n := len(tt.prev.Done); n > 0 && tt.prev.Done[0].ID == "q1" {
				if len(d.Done) != n {
					t.Errorf("request carried out again: outcomes %v", d.Done)
				}
				return
			}
			if d.Done[len(d.Done)-1].ID != "q1" {
				t.Errorf("the newest outcome is %q, want q1", d.Done[len(d.Done)-1].ID)
			}
			if len(tt.prev.Done) == doneSize {
				if len(d.Done) != doneSize || d.Done[0].ID != "old-1" {
					t.Errorf("outcomes %v: want the %d newest, from old-1", d.Done, doneSize)
				}
			}
			err := errOf(r)
			switch {
			case tt.errIs == nil && tt.errHas == "":
				if err != nil {
					t.Errorf("outcome %+v: error %v, want success", r, err)
				}
			case tt.errIs != nil && !errors.Is(err, tt.errIs):
				t.Errorf("outcome %+v: error %v, want %v", r, err, tt.errIs)
			case err == nil || !strings.Contains(err.Error(), tt.errHas):
				t.Errorf("outcome %+v: error %v, want one containing %q", r, err, tt.errHas)
			}
		})
	}
}

func TestDecideGroupFailbackPolicy(t *testing.T) {
	after := failover.Policy{After: time.Minute}
	// a is up in both views, since sinceR1 and sinceR2 before t0; the group is on b.
	views := func(sinceR1, sinceR2 time.Duration) []liveView {
		v1, v2 := lv("r1", 2, "a+ b+ c+"), lv("r2", 2, "a+ b+ c+")
		v1.view.Groups["g"].Servers["a"] = serverView{Up: true, Since: t0.Add(-sinceR1)}
		v2.view.Groups["g"].Servers["a"] = serverView{Up: true, Since: t0.Add(-sinceR2)}
		return []liveView{v1, v2}
	}
	failback := shape{Epoch: 3, Revoking: true, To: "a", From: "b", LastTo: "a"}
	stay := shape{Active: "b", Epoch: 2}
	tests := []struct {
		name    string
		pol     failover.Policy
		hold    bool
		views   []liveView
		want    shape
		pending string
		recheck time.Time
	}{
		{name: "auto: failback at once", views: views(time.Hour, time.Hour), want: failback},
		{name: "manual: waits for an operator", pol: failover.Policy{Manual: true}, views: views(time.Hour, time.Hour),
			want: stay, pending: "a"},
		{name: "held by an operator", hold: true, views: views(time.Hour, time.Hour), want: stay, pending: "a"},
		{name: "auto after: up since the latest view's time, too recently", pol: after, views: views(time.Hour, 10*time.Second),
			want: stay, pending: "a", recheck: t0.Add(50 * time.Second)},
		{name: "auto after: up long enough in every view", pol: after, views: views(2*time.Minute, time.Hour), want: failback},
		{name: "auto after: the delay ends now", pol: after, views: views(time.Minute, time.Hour), want: failback},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input(Decision{Active: "b", Epoch: 2, Hold: tt.hold}, t0, tt.views...)
			in.policy = tt.pol
			d, _ := decideGroup(in)
			if s := shapeOf(d); s != tt.want {
				t.Errorf("decision %+v, want %+v", s, tt.want)
			}
			if d.Pending != tt.pending || !d.Recheck.Equal(tt.recheck) {
				t.Errorf("Pending %q, Recheck %v; want %q, %v", d.Pending, d.Recheck, tt.pending, tt.recheck)
			}
			if tt.want == failback && d.Last.Kind != failover.KindFailback {
				t.Errorf("Last.Kind %q, want %q", d.Last.Kind, failover.KindFailback)
			}
		})
	}
}

func TestErrOf(t *testing.T) {
	sentinels := []error{failover.ErrNothingToDo, failover.ErrNoSuchServer, failover.ErrServerDown}
	tests := []struct {
		name    string
		r       result
		is      error // nil: none of the sentinels
		wantMsg string
	}{
		{name: "success", r: result{ID: "1"}},
		{name: "nothing to do", r: result{ID: "1", Nothing: true, Msg: "a is already active"}, is: failover.ErrNothingToDo,
			wantMsg: "nothing to do: a is already active"},
		{name: "no such server", r: result{ID: "1", Err: fmt.Sprintf("%v: %q", failover.ErrNoSuchServer, "zz")}, is: failover.ErrNoSuchServer,
			wantMsg: `no such server: "zz"`},
		{name: "server down", r: result{ID: "1", Err: fmt.Sprintf("%v: %s", failover.ErrServerDown, "c")}, is: failover.ErrServerDown,
			wantMsg: "server is not available: c"},
		{name: "any other error", r: result{ID: "1", Err: `unknown action "reboot"`}, wantMsg: `unknown action "reboot"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := errOf(tt.r)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("errOf = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantMsg {
				t.Fatalf("errOf = %v, want %q", err, tt.wantMsg)
			}
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == tt.is) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, got)
				}
			}
		})
	}
}

// TestDecideGroupInvariants runs random sequences of views, acknowledgements
// and operator requests and checks what must hold after every decision.
func TestDecideGroupInvariants(t *testing.T) {
	names := []string{"a", "b", "c"}
	kinds := []string{failover.ActionSwitch, failover.ActionFailback, actionDrain, actionUndrain}
	policies := []failover.Policy{{}, {Manual: true}, {After: 3 * time.Second}}
	for seq := range 300 {
		rng := rand.New(rand.NewPCG(uint64(seq), 7))
		pol := policies[seq%len(policies)]
		t.Run(fmt.Sprintf("seq%d", seq), func(t *testing.T) {
			var d Decision
			now := t0
			acks := map[string]uint64{}
			var trace []string
			for step := range 60 {
				now = now.Add(time.Duration(rng.IntN(2500)) * time.Millisecond)
				var views []liveView
				for _, id := range []string{"r1", "r2", "r3"} {
					if rng.IntN(2) == 0 {
						acks[id] = d.Epoch // adopted the decision in force
					}
					var spec []string
					for _, n := range names {
						spec = append(spec, n+map[bool]string{true: "+", false: "-"}[rng.IntN(4) != 0])
					}
					v := lv(id, acks[id], strings.Join(spec, " "))
					if rng.IntN(6) == 0 {
						v.view.Requests = []request{{ID: fmt.Sprintf("%s-%d", id, step), Group: "g",
							Action: failover.Action{Kind: kinds[rng.IntN(len(kinds))], Server: names[rng.IntN(len(names))], By: "op"}}}
					}
					views = append(views, v)
				}
				in := input(d, now, views...)
				in.policy = pol
				got, agg := decideGroup(in)
				trace = append(trace, fmt.Sprintf("%+v", shapeOf(got)))
				fail := func(format string, args ...any) {
					t.Helper()
					t.Fatalf("step %d: "+format+"\nprev %+v\ngot  %+v\ntrace %v", append(append([]any{step}, args...), d, got, trace)...)
				}
				if got.Epoch < d.Epoch || got.Epoch > d.Epoch+1 {
					fail("epoch %d after %d", got.Epoch, d.Epoch)
				}
				if got.Revoking != (got.To != "") || got.Revoking && got.Active != "" {
					fail("inconsistent revocation")
				}
				if got.Active != "" && (!agg[got.Active].up || got.drained(got.Active)) {
					fail("active server %s is not available", got.Active)
				}
				if d.Active != "" && got.Active != "" && got.Active != d.Active {
					fail("role moved from %s to %s without a revocation", d.Active, got.Active)
				}
				if d.Revoking && !got.Revoking {
					acked := true
					for _, v := range views {
						acked = acked && v.view.Groups["g"].Ack >= d.Epoch
					}
					if !acked && now.Before(d.RevokedAt.Add(testRevoke)) {
						fail("granted before every view acknowledged epoch %d and before the revoke timeout", d.Epoch)
					}
					if got.Epoch != d.Epoch {
						fail("grant at epoch %d, not the revocation's %d", got.Epoch, d.Epoch)
					}
				}
				if len(got.Done) > doneSize {
					fail("%d outcomes kept", len(got.Done))
				}
				d = got
			}
		})
	}
}
