package failover_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/failover"
)

// fakeRemote is a leader that records what a follower hands it.
type fakeRemote struct {
	mu    sync.Mutex
	views []string // "group/by" of each ViewChanged
	reqs  []failover.Action
	err   error // what Request returns
}

func (r *fakeRemote) ViewChanged(group, by string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.views = append(r.views, group+"/"+by)
}

func (r *fakeRemote) Request(group string, a failover.Action) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if group != "g" {
		return errors.New("request for group " + group)
	}
	r.reqs = append(r.reqs, a)
	return r.err
}

func (r *fakeRemote) got() ([]string, []failover.Action) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.views), slices.Clone(r.reqs)
}

// sw is the part of a Switch a test checks.
type sw struct {
	From, To string
	Epoch    uint64
	Revoking bool
}

func sws(all []failover.Switch) []sw {
	var out []sw
	for _, s := range all {
		if s.Group != "g" {
			panic("switch of group " + s.Group)
		}
		out = append(out, sw{From: s.From, To: s.To, Epoch: s.Epoch, Revoking: s.Revoking})
	}
	return out
}

func published(active string, epoch uint64, from, to string) failover.Published {
	return failover.Published{Committed: failover.Committed{Active: active, Epoch: epoch},
		Last: failover.Switch{From: from, To: to, Kind: failover.KindDown, Reason: "leader says so"}}
}

func revocation(epoch uint64, from, to string) failover.Published {
	p := published("", epoch, from, to)
	p.Revoking = true
	return p
}

// committed is the part of a Committed a test checks.
type committed struct {
	Active   string
	Epoch    uint64
	Revoking bool
	Fenced   bool
}

func committedOf(c *failover.Committed) committed {
	return committed{Active: c.Active, Epoch: c.Epoch, Revoking: c.Revoking, Fenced: c.Fenced}
}

func TestElectorAdopt(t *testing.T) {
	type adopt struct {
		p       failover.Published
		changed bool
	}
	tests := []struct {
		name    string
		adopts  []adopt
		want    committed
		fired   []sw // every onSwitch, in order
		history []sw
	}{
		{
			name:    "first decision",
			adopts:  []adopt{{published("a", 1, "", "a"), true}},
			want:    committed{Active: "a", Epoch: 1},
			fired:   []sw{{To: "a", Epoch: 1}},
			history: []sw{{To: "a", Epoch: 1}},
		},
		{
			name: "a replica that missed decisions switches from what it routed on",
			// On a; the leader moved a->b->c meanwhile: a's websockets close, not b's.
			adopts:  []adopt{{published("a", 1, "", "a"), true}, {published("c", 3, "b", "c"), true}},
			want:    committed{Active: "c", Epoch: 3},
			fired:   []sw{{To: "a", Epoch: 1}, {From: "a", To: "c", Epoch: 3}},
			history: []sw{{To: "a", Epoch: 1}, {From: "a", To: "c", Epoch: 3}},
		},
		{
			name: "a revocation that ends with no server is a switch to none",
			adopts: []adopt{{published("a", 1, "", "a"), true}, {revocation(2, "a", "b"), true},
				{published("", 2, "a", ""), true}},
			want:    committed{Epoch: 2},
			fired:   []sw{{To: "a", Epoch: 1}, {From: "a", To: "b", Epoch: 2, Revoking: true}, {From: "a", Epoch: 2}},
			history: []sw{{To: "a", Epoch: 1}, {From: "a", Epoch: 2}},
		},
		{
			name:    "a newer epoch replaces the decision",
			adopts:  []adopt{{published("a", 1, "", "a"), true}, {published("b", 4, "a", "b"), true}},
			want:    committed{Active: "b", Epoch: 4},
			fired:   []sw{{To: "a", Epoch: 1}, {From: "a", To: "b", Epoch: 4}},
			history: []sw{{To: "a", Epoch: 1}, {From: "a", To: "b", Epoch: 4}},
		},
		{
			name:    "a leader's switch without From is from this replica's active server",
			adopts:  []adopt{{published("a", 1, "", "a"), true}, {published("b", 3, "", "b"), true}},
			want:    committed{Active: "b", Epoch: 3},
			fired:   []sw{{To: "a", Epoch: 1}, {From: "a", To: "b", Epoch: 3}},
			history: []sw{{To: "a", Epoch: 1}, {From: "a", To: "b", Epoch: 3}},
		},
		{
			name: "revocation then grant at the same epoch",
			adopts: []adopt{
				{published("a", 1, "", "a"), true},
				{revocation(2, "a", "b"), true},
				{published("b", 2, "a", "b"), true},
			},
			want: committed{Active: "b", Epoch: 2},
			fired: []sw{{To: "a", Epoch: 1},
				{From: "a", To: "b", Epoch: 2, Revoking: true},
				{From: "a", To: "b", Epoch: 2}},
			history: []sw{{To: "a", Epoch: 1}, {From: "a", To: "b", Epoch: 2}},
		},
		{
			name: "a revocation in force",
			adopts: []adopt{
				{published("a", 1, "", "a"), true},
				{revocation(2, "a", "b"), true},
			},
			want:    committed{Epoch: 2, Revoking: true},
			fired:   []sw{{To: "a", Epoch: 1}, {From: "a", To: "b", Epoch: 2, Revoking: true}},
			history: []sw{{To: "a", Epoch: 1}},
		},
		{
			name: "a revocation is from this replica's active server",
			adopts: []adopt{
				{published("a", 1, "", "a"), true},
				{revocation(3, "x", "b"), true},
			},
			want:    committed{Epoch: 3, Revoking: true},
			fired:   []sw{{To: "a", Epoch: 1}, {From: "a", To: "b", Epoch: 3, Revoking: true}},
			history: []sw{{To: "a", Epoch: 1}},
		},
		{
			name:   "a revocation with nothing active here fires nothing",
			adopts: []adopt{{revocation(2, "a", "b"), true}},
			want:   committed{Epoch: 2, Revoking: true},
		},
		{
			name: "an older or equal epoch is ignored",
			adopts: []adopt{
				{published("b", 5, "a", "b"), true},
				{published("a", 4, "b", "a"), false},
				{published("c", 5, "b", "c"), false},
				{revocation(5, "b", "c"), false},
				{revocation(4, "b", "c"), false},
			},
			want:    committed{Active: "b", Epoch: 5},
			fired:   []sw{{From: "a", To: "b", Epoch: 5}},
			history: []sw{{From: "a", To: "b", Epoch: 5}},
		},
		{
			name: "the same decision again changes nothing",
			adopts: []adopt{
				{published("a", 1, "", "a"), true},
				{published("a", 1, "", "a"), false},
			},
			want:    committed{Active: "a", Epoch: 1},
			fired:   []sw{{To: "a", Epoch: 1}},
			history: []sw{{To: "a", Epoch: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec recorder
			e := failover.NewElector("g", rec.on)
			e.Follow(&fakeRemote{})
			for i, a := range tt.adopts {
				if got := e.Adopt(a.p); got != a.changed {
					t.Errorf("Adopt #%d (%+v) = %v, want %v", i, a.p.Committed, got, a.changed)
				}
			}
			if got := committedOf(e.Current()); got != tt.want {
				t.Errorf("Current %+v, want %+v", got, tt.want)
			}
			if e.Active() != tt.want.Active || e.Epoch() != tt.want.Epoch {
				t.Errorf("Active %q, Epoch %d; want %q, %d", e.Active(), e.Epoch(), tt.want.Active, tt.want.Epoch)
			}
			if got := sws(rec.list()); !reflect.DeepEqual(got, tt.fired) {
				t.Errorf("fired %+v, want %+v", got, tt.fired)
			}
			if got := sws(e.History()); !reflect.DeepEqual(got, tt.history) {
				t.Errorf("history %+v, want %+v", got, tt.history)
			}
		})
	}
}

func TestElectorAdoptKeepsLeaderState(t *testing.T) {
	e := failover.NewElector("g", nil)
	e.Follow(&fakeRemote{})
	recheck := time.Now().Add(time.Minute)
	p := published("b", 3, "a", "b")
	p.Hold, p.Pending, p.Recheck, p.Reason = true, "a", recheck, "held on b"
	e.Adopt(p)
	d, hold := e.Status()
	if !hold || d.Active != "b" || d.Pending != "a" || !d.Recheck.Equal(recheck) || d.Reason != "held on b" {
		t.Errorf("Status %+v, hold %v; want the leader's", d, hold)
	}
	// The leader's news at the same epoch (the hold ended) is taken too.
	p.Hold, p.Pending, p.Recheck, p.Reason = false, "", time.Time{}, "current server is the preferred available one"
	if e.Adopt(p) {
		t.Errorf("Adopt at the same epoch reports a change")
	}
	d, hold = e.Status()
	if hold || d.Pending != "" || !d.Recheck.IsZero() || d.Reason != p.Reason {
		t.Errorf("Status %+v, hold %v after the leader's update", d, hold)
	}
}

func TestElectorAdoptFencing(t *testing.T) {
	var rec recorder
	e := failover.NewElector("g", rec.on)
	e.Follow(&fakeRemote{})
	e.Adopt(published("a", 3, "", "a"))
	before := e.Current()
	history := e.History()
	fired := len(rec.list())

	fence := failover.Published{Committed: failover.Committed{Active: before.Active, Epoch: before.Epoch, Fenced: true}}
	if !e.Adopt(fence) {
		t.Fatalf("fencing reports no change")
	}
	fenced := e.Current()
	if got, want := committedOf(fenced), (committed{Active: "a", Epoch: 3, Fenced: true}); got != want {
		t.Errorf("fenced decision %+v, want %+v", got, want)
	}
	select {
	case <-before.Done():
	default:
		t.Errorf("Done of the decision before the fence is not closed")
	}
	if !reflect.DeepEqual(e.History(), history) {
		t.Errorf("fencing changed the history: %+v", e.History())
	}
	// The websockets to the active server close, as at a revocation.
	if got := sws(rec.list()[fired:]); !reflect.DeepEqual(got, []sw{{From: "a", Epoch: 3, Revoking: true}}) {
		t.Errorf("fencing fired %+v", got)
	}
	if e.Adopt(fence) {
		t.Errorf("fencing again reports a change")
	}

	// The same decision read again unfences; nothing else changes.
	if !e.Adopt(published("a", 3, "", "a")) {
		t.Fatalf("unfencing reports no change")
	}
	if got, want := committedOf(e.Current()), (committed{Active: "a", Epoch: 3}); got != want {
		t.Errorf("unfenced decision %+v, want %+v", got, want)
	}
	select {
	case <-fenced.Done():
	default:
		t.Errorf("Done of the fenced decision is not closed")
	}
	if n := len(rec.list()); n != fired+1 {
		t.Errorf("unfencing fired a switch: %+v", rec.list())
	}
}

func TestElectorFollowerHandsActionsToTheLeader(t *testing.T) {
	refused := errors.New("leader says no")
	tests := []struct {
		name      string
		remoteErr error
		do        func(e *failover.Elector) error
		wantReqs  []failover.Action
		wantViews []string
	}{
		{
			name:     "switch",
			do:       func(e *failover.Elector) error { return e.SwitchTo("b", "alice") },
			wantReqs: []failover.Action{{Kind: failover.ActionSwitch, Server: "b", By: "alice"}},
		},
		{
			name:      "switch refused by the leader",
			remoteErr: refused,
			do:        func(e *failover.Elector) error { return e.SwitchTo("b", "alice") },
			wantReqs:  []failover.Action{{Kind: failover.ActionSwitch, Server: "b", By: "alice"}},
		},
		{
			name:     "failback",
			do:       func(e *failover.Elector) error { return e.Failback("bob") },
			wantReqs: []failover.Action{{Kind: failover.ActionFailback, By: "bob"}},
		},
		{
			name:      "evaluate tells the leader instead of deciding",
			do:        func(e *failover.Elector) error { e.Evaluate("probe"); return nil },
			wantViews: []string{"g/probe"},
		},
		{
			name: "a new view tells the leader instead of deciding",
			do: func(e *failover.Elector) error {
				e.SetView(newView(failover.Policy{}, "a", "b").View, "reload")
				return nil
			},
			wantViews: []string{"g/reload"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec recorder
			e := failover.NewElector("g", rec.on)
			v := newView(failover.Policy{}, "a", "b")
			e.SetView(v.View, "test") // local: a is active
			r := &fakeRemote{err: tt.remoteErr}
			e.Follow(r)
			if e.Local() {
				t.Fatalf("Local() after Follow")
			}
			v.set("a", false) // a local elector would switch to b
			if err := tt.do(e); !errors.Is(err, tt.remoteErr) || (tt.remoteErr == nil) != (err == nil) {
				t.Errorf("error %v, want %v", err, tt.remoteErr)
			}
			views, reqs := r.got()
			if !reflect.DeepEqual(reqs, tt.wantReqs) || !reflect.DeepEqual(views, tt.wantViews) {
				t.Errorf("remote got requests %+v, views %v; want %+v, %v", reqs, views, tt.wantReqs, tt.wantViews)
			}
			if got := committedOf(e.Current()); got != (committed{Active: "a", Epoch: 1}) {
				t.Errorf("the follower decided on its own: %+v", got)
			}
			if len(rec.list()) != 1 || len(e.History()) != 1 {
				t.Errorf("switches %+v, history %+v: want only the local start", rec.list(), e.History())
			}
		})
	}
}

func TestElectorFollowNilIsLocalAgain(t *testing.T) {
	e := failover.NewElector("g", nil)
	v := newView(failover.Policy{}, "a", "b")
	e.SetView(v.View, "test")
	r := &fakeRemote{}
	e.Follow(r)
	e.Follow(nil)
	if !e.Local() {
		t.Fatalf("Local() false after Follow(nil)")
	}
	if err := e.SwitchTo("b", "alice"); err != nil {
		t.Fatalf("SwitchTo: %v", err)
	}
	if e.Active() != "b" || e.Epoch() != 2 {
		t.Errorf("Active %q, Epoch %d; want b, 2", e.Active(), e.Epoch())
	}
	if _, reqs := r.got(); len(reqs) != 0 {
		t.Errorf("the former remote got %+v", reqs)
	}
}

func TestElectorFollowStopsFailbackTimer(t *testing.T) {
	const after = 50 * time.Millisecond
	clk := newFakeClock()
	e := failover.NewElector("g", nil, failover.WithClock(clk))
	v := newViewAt(clk.Now, failover.Policy{After: after}, "a", "b")
	v.set("a", false)
	e.SetView(v.View, "test") // on b
	v.set("a", true)
	e.Evaluate("test") // failback of a pending, timer armed
	if d, _ := e.Status(); d.Pending != "a" || clk.Pending() != 1 {
		t.Fatalf("no pending failback with its timer: %+v, %d timers", d, clk.Pending())
	}
	r := &fakeRemote{}
	e.Follow(r)
	clk.Advance(3 * after)
	if views, _ := r.got(); len(views) != 0 {
		t.Errorf("the local failback timer still ran: %v", views)
	}
	if e.Active() != "b" {
		t.Errorf("Active %q, want b", e.Active())
	}
}

func TestElectorAwait(t *testing.T) {
	const wait = 100 * time.Millisecond
	tests := []struct {
		name  string
		adopt *failover.Published // adopted while Await waits, if set
		// cancel: the context ends while Await waits; expire: the wait
		// bound passes.
		cancel, expire bool
		want           committed
	}{
		{
			name:  "returns when a newer decision is committed",
			adopt: ptr(published("b", 2, "a", "b")),
			want:  committed{Active: "b", Epoch: 2},
		},
		{
			name:   "returns after the wait bound with no newer decision",
			expire: true,
			want:   committed{Active: "a", Epoch: 1},
		},
		{
			name:   "an equal epoch is no news",
			adopt:  ptr(published("c", 1, "a", "c")),
			expire: true,
			want:   committed{Active: "a", Epoch: 1},
		},
		{
			name:   "returns when the context ends",
			cancel: true,
			want:   committed{Active: "a", Epoch: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			e := failover.NewElector("g", nil, failover.WithClock(clk))
			e.Follow(&fakeRemote{})
			e.Adopt(published("a", 1, "", "a"))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			got := make(chan *failover.Committed, 1)
			go func() { got <- e.Await(ctx, e.Current(), wait, nil) }()
			clk.waitArmed(t) // Await waits
			returned := func() bool {
				select {
				case c := <-got:
					got <- c
					return true
				default:
					return false
				}
			}
			if returned() {
				t.Fatalf("Await returned before anything happened")
			}
			if tt.adopt != nil {
				e.Adopt(*tt.adopt)
			}
			if tt.expire {
				clk.Advance(wait - time.Nanosecond)
				if clk.Pending() != 1 || returned() {
					t.Fatalf("Await gave up before its wait bound")
				}
				clk.Advance(time.Nanosecond)
			}
			if tt.cancel {
				cancel()
			}
			var c *failover.Committed
			select {
			case c = <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("Await did not return")
			}
			if committedOf(c) != tt.want {
				t.Errorf("Await returned %+v, want %+v", committedOf(c), tt.want)
			}
			if n := clk.Pending(); n != 0 {
				t.Errorf("Await left %d timers armed", n)
			}
		})
	}
	t.Run("a decision already replaced returns at once", func(t *testing.T) {
		e := failover.NewElector("g", nil)
		e.Follow(&fakeRemote{})
		old := e.Current()
		e.Adopt(published("a", 1, "", "a"))
		start := time.Now()
		got := e.Await(context.Background(), old, 10*time.Second, nil)
		if took := time.Since(start); took > time.Second {
			t.Errorf("Await took %v", took)
		}
		if committedOf(got) != (committed{Active: "a", Epoch: 1}) {
			t.Errorf("Await returned %+v", committedOf(got))
		}
	})
}

func ptr[T any](v T) *T { return &v }
