package failover_test

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/failover"
)

// fakeView is a group whose servers a test turns up and down.
type fakeView struct {
	mu    sync.Mutex
	cands []failover.Candidate
	pol   failover.Policy
	now   func() time.Time // when a server comes up
}

func newView(pol failover.Policy, names ...string) *fakeView {
	return newViewAt(time.Now, pol, names...)
}

// newViewAt is newView on a clock of the test's (a fakeClock's Now).
func newViewAt(now func() time.Time, pol failover.Policy, names ...string) *fakeView {
	v := &fakeView{pol: pol, now: now}
	for _, n := range names {
		v.cands = append(v.cands, failover.Candidate{Name: n, Up: true, UpSince: now().Add(-time.Hour)})
	}
	return v
}

func (v *fakeView) View() ([]failover.Candidate, failover.Policy) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.cands), v.pol
}

func (v *fakeView) set(name string, up bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := range v.cands {
		if v.cands[i].Name == name {
			v.cands[i].Up = up
			if up {
				v.cands[i].UpSince = v.now()
			}
		}
	}
}

// recorder collects the switches an elector reports.
type recorder struct {
	mu  sync.Mutex
	all []failover.Switch
}

func (r *recorder) on(s failover.Switch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, s)
}

func (r *recorder) list() []failover.Switch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.all)
}

func TestElectorBeforeView(t *testing.T) {
	e := failover.NewElector("g", nil)
	if got := e.Active(); got != "" {
		t.Errorf("Active() = %q before any view", got)
	}
	e.Evaluate("test") // must not panic
	if err := e.SwitchTo("a", "test"); !errors.Is(err, failover.ErrNothingToDo) {
		t.Errorf("SwitchTo before view: %v, want ErrNothingToDo", err)
	}
	if err := e.Failback("test"); !errors.Is(err, failover.ErrNothingToDo) {
		t.Errorf("Failback before view: %v, want ErrNothingToDo", err)
	}
	if e.Epoch() != 0 || len(e.History()) != 0 {
		t.Errorf("epoch %d, history %v; want none", e.Epoch(), e.History())
	}
}

func TestElectorSwitchTo(t *testing.T) {
	tests := []struct {
		name    string
		down    []string
		target  string
		wantErr error
		// wantActive is the active server after the call.
		wantActive string
		wantHold   bool
	}{
		{name: "unknown server", target: "zz", wantErr: failover.ErrNoSuchServer, wantActive: "a"},
		{name: "empty name", target: "", wantErr: failover.ErrNoSuchServer, wantActive: "a"},
		{name: "down server", down: []string{"b"}, target: "b", wantErr: failover.ErrServerDown, wantActive: "a"},
		{name: "already active", target: "a", wantErr: failover.ErrNothingToDo, wantActive: "a", wantHold: true},
		{name: "switch to the failover", target: "b", wantActive: "b", wantHold: true},
		{name: "switch to the third", target: "c", wantActive: "c", wantHold: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newView(failover.Policy{}, "a", "b", "c")
			for _, d := range tt.down {
				v.set(d, false)
			}
			var rec recorder
			e := failover.NewElector("g", rec.on)
			defer e.Stop()
			e.SetView(v.View, "test")
			if e.Active() != "a" {
				t.Fatalf("Active() = %q after SetView, want a", e.Active())
			}
			epoch := e.Epoch()
			err := e.SwitchTo(tt.target, "operator")
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("SwitchTo(%q) = %v, want %v", tt.target, err, tt.wantErr)
			}
			if got := e.Active(); got != tt.wantActive {
				t.Errorf("Active() = %q, want %q", got, tt.wantActive)
			}
			d, hold := e.Status()
			if hold != tt.wantHold {
				t.Errorf("hold = %v, want %v", hold, tt.wantHold)
			}
			if tt.wantErr != nil {
				if e.Epoch() != epoch {
					t.Errorf("epoch moved from %d to %d on a refused switch", epoch, e.Epoch())
				}
				return
			}
			if e.Epoch() != epoch+1 {
				t.Errorf("epoch %d, want %d", e.Epoch(), epoch+1)
			}
			if d.Active != tt.target || d.Reason != "switch requested by operator" {
				t.Errorf("Status decision %+v", d)
			}
			sw := rec.list()
			last := sw[len(sw)-1]
			if last.From != "a" || last.To != tt.target || last.By != "operator" || last.Group != "g" || last.Epoch != e.Epoch() {
				t.Errorf("last switch %+v", last)
			}
			// A hold survives re-evaluation while the master is up.
			e.Evaluate("health")
			if got := e.Active(); got != tt.target {
				t.Errorf("after Evaluate: Active() = %q, want the held %q", got, tt.target)
			}
		})
	}
}

func TestElectorHoldEndsWhenHeldServerFails(t *testing.T) {
	v := newView(failover.Policy{}, "a", "b")
	e := failover.NewElector("g", nil)
	defer e.Stop()
	e.SetView(v.View, "test")
	if err := e.SwitchTo("b", "operator"); err != nil {
		t.Fatal(err)
	}
	v.set("b", false)
	e.Evaluate("health")
	if got := e.Active(); got != "a" {
		t.Fatalf("Active() = %q after the held server failed, want a", got)
	}
	if _, hold := e.Status(); hold {
		t.Errorf("hold still on after the held server failed")
	}
	// With the hold gone, a later failure of a fails over and back normally.
	v.set("b", true)
	v.set("a", false)
	e.Evaluate("health")
	v.set("a", true)
	e.Evaluate("health")
	if got := e.Active(); got != "a" {
		t.Errorf("Active() = %q, want a after automatic failback", got)
	}
}

func TestElectorFailback(t *testing.T) {
	tests := []struct {
		name       string
		pol        failover.Policy
		hold       bool // switch to b by hand first
		masterDown bool // a went down, then up again
		wantErr    error
		wantActive string
	}{
		{name: "already on master", wantErr: failover.ErrNothingToDo, wantActive: "a"},
		{name: "manual policy", pol: failover.Policy{Manual: true}, masterDown: true, wantActive: "a"},
		{name: "after delay not over", pol: failover.Policy{After: time.Hour}, masterDown: true, wantActive: "a"},
		{name: "operator hold", hold: true, wantActive: "a"},
		{name: "operator hold under manual", pol: failover.Policy{Manual: true}, hold: true, wantActive: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newView(tt.pol, "a", "b")
			e := failover.NewElector("g", nil)
			defer e.Stop()
			e.SetView(v.View, "test")
			if tt.hold {
				if err := e.SwitchTo("b", "operator"); err != nil {
					t.Fatal(err)
				}
			}
			if tt.masterDown {
				v.set("a", false)
				e.Evaluate("health")
				v.set("a", true)
				e.Evaluate("health")
				if got := e.Active(); got != "b" {
					t.Fatalf("Active() = %q before Failback, want b", got)
				}
				if d, _ := e.Status(); d.Pending != "a" {
					t.Errorf("Pending = %q, want a", d.Pending)
				}
			}
			err := e.Failback("operator")
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Failback() = %v, want %v", err, tt.wantErr)
			}
			if got := e.Active(); got != tt.wantActive {
				t.Errorf("Active() = %q, want %q", got, tt.wantActive)
			}
			if _, hold := e.Status(); hold {
				t.Errorf("hold still on after Failback")
			}
			if err == nil {
				h := e.History()
				if last := h[len(h)-1]; last.To != "a" || last.By != "operator" || !strings.Contains(last.Reason, "requested by operator") {
					t.Errorf("last switch %+v", last)
				}
				if err := e.Failback("operator"); !errors.Is(err, failover.ErrNothingToDo) {
					t.Errorf("second Failback() = %v, want ErrNothingToDo", err)
				}
			}
		})
	}
}

func TestElectorHistoryBounded(t *testing.T) {
	v := newView(failover.Policy{}, "a", "b")
	var rec recorder
	e := failover.NewElector("g", rec.on)
	defer e.Stop()
	e.SetView(v.View, "test")
	const flips = 100
	for i := range flips {
		v.set("a", i%2 == 1) // a down, a up, a down, ...
		e.Evaluate("health")
	}
	total := uint64(flips + 1) // the first decision plus every flip
	if e.Epoch() != total {
		t.Fatalf("Epoch() = %d, want %d", e.Epoch(), total)
	}
	if n := len(rec.list()); n != int(total) {
		t.Errorf("onSwitch called %d times, want %d", n, total)
	}
	h := e.History()
	if len(h) != 64 {
		t.Fatalf("history holds %d switches, want 64", len(h))
	}
	for i, s := range h {
		if want := total - 63 + uint64(i); s.Epoch != want {
			t.Errorf("history[%d].Epoch = %d, want %d", i, s.Epoch, want)
		}
		if i > 0 {
			if s.From != h[i-1].To {
				t.Errorf("history[%d] from %q but the previous switch went to %q", i, s.From, h[i-1].To)
			}
			if s.At.Before(h[i-1].At) {
				t.Errorf("history[%d] is older than history[%d]", i, i-1)
			}
		}
	}
	if h[63].Epoch != e.Epoch() {
		t.Errorf("newest switch has epoch %d, Epoch() = %d", h[63].Epoch, e.Epoch())
	}
	// History returns a copy.
	h[0].To = "mutated"
	if e.History()[0].To == "mutated" {
		t.Errorf("History() shares its slice with the elector")
	}
}

func TestElectorSetViewKeepsActive(t *testing.T) {
	v := newView(failover.Policy{}, "a", "b")
	e := failover.NewElector("g", nil)
	defer e.Stop()
	e.SetView(v.View, "test")
	epoch := e.Epoch()
	// A reload with the same servers causes no switch.
	v2 := newView(failover.Policy{}, "a", "b")
	e.SetView(v2.View, "reload")
	if e.Active() != "a" || e.Epoch() != epoch {
		t.Errorf("reload switched: active %q, epoch %d (was %d)", e.Active(), e.Epoch(), epoch)
	}
	// A reload that removes the active server switches.
	v3 := newView(failover.Policy{}, "b")
	e.SetView(v3.View, "reload")
	if e.Active() != "b" || e.Epoch() != epoch+1 {
		t.Errorf("after removing a: active %q, epoch %d", e.Active(), e.Epoch())
	}
	if last := e.History()[len(e.History())-1]; last.Reason != "a was removed from the group" || last.By != "reload" {
		t.Errorf("last switch %+v", last)
	}
}

func TestElectorAfterTimer(t *testing.T) {
	const after = 50 * time.Millisecond
	clk := newFakeClock()
	v := newViewAt(clk.Now, failover.Policy{After: after}, "a", "b")
	var rec recorder
	e := failover.NewElector("g", rec.on, failover.WithClock(clk))
	defer e.Stop()
	e.SetView(v.View, "test")

	v.set("a", false)
	e.Evaluate("health")
	if e.Active() != "b" {
		t.Fatalf("Active() = %q after a went down, want b", e.Active())
	}
	start := clk.Now()
	v.set("a", true)
	e.Evaluate("health")
	if e.Active() != "b" {
		t.Fatalf("failed back at once despite after: %v", after)
	}
	d, _ := e.Status()
	if d.Pending != "a" || !d.Recheck.Equal(start.Add(after)) {
		t.Errorf("decision %+v: want a pending with a recheck at %v", d, start.Add(after))
	}
	// No one calls Evaluate: the elector's own timer must fail back, not
	// before the delay is over.
	clk.Advance(after - time.Nanosecond)
	if e.Active() != "b" {
		t.Fatalf("failed back %v after a came up, before the %v delay", after-time.Nanosecond, after)
	}
	clk.Advance(time.Nanosecond)
	if e.Active() != "a" {
		t.Fatalf("Active() = %q once the delay is over, want a (the failback timer)", e.Active())
	}
	sw := rec.list()
	last := sw[len(sw)-1]
	if last.To != "a" || last.By != "failback timer" || last.Reason != "failback: a stayed up for 50ms" || !last.At.Equal(start.Add(after)) {
		t.Errorf("last switch %+v", last)
	}
	if n := clk.Pending(); n != 0 {
		t.Errorf("%d timers still armed after the failback", n)
	}
}

func TestElectorAfterTimerCancelledByFailure(t *testing.T) {
	const after = 50 * time.Millisecond
	clk := newFakeClock()
	v := newViewAt(clk.Now, failover.Policy{After: after}, "a", "b")
	e := failover.NewElector("g", nil, failover.WithClock(clk))
	defer e.Stop()
	e.SetView(v.View, "test")
	v.set("a", false)
	e.Evaluate("health")
	v.set("a", true)
	e.Evaluate("health")
	// a flaps down before its delay is over: no failback.
	clk.Advance(after / 2)
	v.set("a", false)
	e.Evaluate("health")
	if n := clk.Pending(); n != 0 {
		t.Errorf("%d timers still armed for a server that went down again", n)
	}
	clk.Advance(3 * after)
	if e.Active() != "b" {
		t.Errorf("Active() = %q: failed back to a server that went down again", e.Active())
	}
}

func TestElectorStopCancelsTimer(t *testing.T) {
	const after = 50 * time.Millisecond
	clk := newFakeClock()
	v := newViewAt(clk.Now, failover.Policy{After: after}, "a", "b")
	e := failover.NewElector("g", nil, failover.WithClock(clk))
	e.SetView(v.View, "test")
	v.set("a", false)
	e.Evaluate("health")
	v.set("a", true)
	e.Evaluate("health")
	if n := clk.Pending(); n != 1 {
		t.Fatalf("%d timers armed for the pending failback, want 1", n)
	}
	e.Stop()
	clk.Advance(3 * after)
	if e.Active() != "b" {
		t.Errorf("Active() = %q after Stop, want b (no timer)", e.Active())
	}
}

func TestElectorConcurrent(t *testing.T) {
	v := newView(failover.Policy{}, "a", "b", "c")
	e := failover.NewElector("g", nil)
	defer e.Stop()
	e.SetView(v.View, "test")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				switch (i + j) % 5 {
				case 0:
					v.set("a", j%2 == 0)
				case 1:
					e.Evaluate("health")
				case 2:
					_ = e.SwitchTo("b", "op")
				case 3:
					_ = e.Failback("op")
				case 4:
					_ = e.Active()
					_ = e.History()
				}
			}
		}()
	}
	wg.Wait()
	h := e.History()
	for i := 1; i < len(h); i++ {
		if h[i].Epoch != h[i-1].Epoch+1 {
			t.Fatalf("epochs not consecutive: %d then %d", h[i-1].Epoch, h[i].Epoch)
		}
	}
	if len(h) > 0 && h[len(h)-1].To != e.Active() {
		t.Errorf("newest switch went to %q, Active() = %q", h[len(h)-1].To, e.Active())
	}
}
