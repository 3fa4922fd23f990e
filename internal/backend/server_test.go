package backend_test

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
)

// transitions records what a registry publishes.
type transitions struct {
	mu  sync.Mutex
	all []backend.Transition
}

func (tr *transitions) notify(t backend.Transition) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.all = append(tr.all, t)
}

func (tr *transitions) list() []backend.Transition {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.all)
}

func newServer(t *testing.T) (*backend.Server, *transitions) {
	t.Helper()
	tr := &transitions{}
	reg := backend.NewRegistry(tr.notify)
	return reg.Get(backend.Key{Group: "g", Name: "s", Address: "s.local:80"}), tr
}

func TestReportCheck(t *testing.T) {
	const (
		pass = true
		fail = false
	)
	tests := []struct {
		name       string
		rise, fall int
		checks     []bool
		// states after each check
		want []backend.State
		// number of transitions published
		wantTransitions int
	}{
		{name: "first pass decides at once", rise: 3, fall: 3, checks: []bool{pass},
			want: []backend.State{backend.Up}, wantTransitions: 1},
		{name: "first failure decides at once", rise: 3, fall: 3, checks: []bool{fail},
			want: []backend.State{backend.Down}, wantTransitions: 1},
		{name: "fall failures in a row take it down", rise: 2, fall: 3, checks: []bool{pass, fail, fail, fail},
			want: []backend.State{backend.Up, backend.Up, backend.Up, backend.Down}, wantTransitions: 2},
		{name: "a pass resets the failure count", rise: 2, fall: 3, checks: []bool{pass, fail, fail, pass, fail, fail, fail},
			want: []backend.State{backend.Up, backend.Up, backend.Up, backend.Up, backend.Up, backend.Up, backend.Down}, wantTransitions: 2},
		{name: "rise passes in a row bring it up", rise: 2, fall: 2, checks: []bool{fail, pass, pass},
			want: []backend.State{backend.Down, backend.Down, backend.Up}, wantTransitions: 2},
		{name: "a failure resets the pass count", rise: 3, fall: 2, checks: []bool{fail, pass, pass, fail, pass, pass, pass},
			want: []backend.State{backend.Down, backend.Down, backend.Down, backend.Down, backend.Down, backend.Down, backend.Up}, wantTransitions: 2},
		{name: "rise and fall of one flip every time", rise: 1, fall: 1, checks: []bool{pass, fail, pass, fail},
			want: []backend.State{backend.Up, backend.Down, backend.Up, backend.Down}, wantTransitions: 4},
		{name: "steady up publishes once", rise: 2, fall: 2, checks: []bool{pass, pass, pass, pass},
			want: []backend.State{backend.Up, backend.Up, backend.Up, backend.Up}, wantTransitions: 1},
		{name: "steady down publishes once", rise: 2, fall: 2, checks: []bool{fail, fail, fail},
			want: []backend.State{backend.Down, backend.Down, backend.Down}, wantTransitions: 1},
		{name: "passes while up do not count toward rise after a fall", rise: 2, fall: 1, checks: []bool{pass, pass, pass, fail, pass},
			want: []backend.State{backend.Up, backend.Up, backend.Up, backend.Down, backend.Down}, wantTransitions: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, tr := newServer(t)
			if s.State() != backend.Unknown || !s.Available() {
				t.Fatalf("new server: state %v, available %v; want unknown and available", s.State(), s.Available())
			}
			for i, ok := range tt.checks {
				r := backend.CheckResult{At: time.Now(), OK: ok, Status: 200, Detail: "detail"}
				s.ReportCheck(r, tt.rise, tt.fall)
				if got := s.State(); got != tt.want[i] {
					t.Fatalf("after check %d (%v): state %v, want %v", i, ok, got, tt.want[i])
				}
				if s.Available() != (tt.want[i] != backend.Down) {
					t.Errorf("after check %d: Available() = %v in state %v", i, s.Available(), s.State())
				}
				if lc := s.LastCheck(); lc == nil || lc.OK != ok {
					t.Errorf("after check %d: LastCheck() = %+v", i, lc)
				}
			}
			got := tr.list()
			if len(got) != tt.wantTransitions {
				t.Errorf("%d transitions published, want %d: %+v", len(got), tt.wantTransitions, got)
			}
			for i, x := range got {
				if x.Server != s || x.From == x.To || x.Reason == "" || x.At.IsZero() {
					t.Errorf("transition %d: %+v", i, x)
				}
				if i > 0 && x.From != got[i-1].To {
					t.Errorf("transition %d from %v, previous went to %v", i, x.From, got[i-1].To)
				}
				if x.To == backend.Down && x.From != backend.Unknown && !strings.Contains(x.Reason, "detail") {
					t.Errorf("transition %d reason %q does not say why the check failed", i, x.Reason)
				}
			}
			if len(got) > 0 && !s.Since().Equal(got[len(got)-1].At) {
				t.Errorf("Since() = %v, last transition at %v", s.Since(), got[len(got)-1].At)
			}
		})
	}
}

func TestChanging(t *testing.T) {
	s, _ := newServer(t)
	if !s.Changing() {
		t.Errorf("unknown server is not changing")
	}
	s.ReportCheck(backend.CheckResult{OK: true}, 2, 2)
	if s.Changing() {
		t.Errorf("steady up server is changing")
	}
	s.ReportCheck(backend.CheckResult{OK: false}, 2, 2)
	if !s.Changing() {
		t.Errorf("up server with a failed check is not changing")
	}
	s.ReportCheck(backend.CheckResult{OK: false}, 2, 2)
	if s.State() != backend.Down || !s.Changing() {
		t.Errorf("down server: state %v, changing %v", s.State(), s.Changing())
	}
}

func TestMarkDown(t *testing.T) {
	tests := []struct {
		name  string
		setup []bool // checks before, rise=fall=1
		want  bool
	}{
		{name: "from unknown", want: true},
		{name: "from up", setup: []bool{true}, want: true},
		{name: "already down", setup: []bool{false}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, tr := newServer(t)
			for _, ok := range tt.setup {
				s.ReportCheck(backend.CheckResult{OK: ok}, 1, 1)
			}
			before := len(tr.list())
			// Drain a kick left by the setup.
			select {
			case <-s.Kicked():
			default:
			}
			if got := s.MarkDown("passive: refused"); got != tt.want {
				t.Errorf("MarkDown() = %v, want %v", got, tt.want)
			}
			if s.State() != backend.Down || s.Available() {
				t.Errorf("state %v after MarkDown", s.State())
			}
			if n := len(tr.list()) - before; n != map[bool]int{true: 1, false: 0}[tt.want] {
				t.Errorf("%d transitions published", n)
			}
			if tt.want {
				if last := tr.list()[len(tr.list())-1]; last.To != backend.Down || last.Reason != "passive: refused" {
					t.Errorf("transition %+v", last)
				}
				select {
				case <-s.Kicked():
				default:
					t.Errorf("MarkDown did not ask for a check")
				}
			}
		})
	}
}

func TestMarkDownConcurrent(t *testing.T) {
	for _, start := range []string{"unknown", "up"} {
		t.Run(start, func(t *testing.T) {
			for round := range 20 {
				s, tr := newServer(t)
				if start == "up" {
					s.ReportCheck(backend.CheckResult{OK: true}, 1, 1)
				}
				before := len(tr.list())
				var changed atomic.Int32
				var wg sync.WaitGroup
				ready := make(chan struct{})
				for range 50 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-ready
						if s.MarkDown("passive") {
							changed.Add(1)
						}
					}()
				}
				close(ready)
				wg.Wait()
				if n := changed.Load(); n != 1 {
					t.Fatalf("round %d: %d of 50 MarkDown calls reported a change, want 1", round, n)
				}
				if n := len(tr.list()) - before; n != 1 {
					t.Fatalf("round %d: %d transitions published, want 1", round, n)
				}
			}
		})
	}
}

func TestMarkDownThenRise(t *testing.T) {
	s, _ := newServer(t)
	s.ReportCheck(backend.CheckResult{OK: true}, 3, 3)
	s.ReportCheck(backend.CheckResult{OK: true}, 3, 3)
	s.ReportCheck(backend.CheckResult{OK: true}, 3, 3)
	s.MarkDown("passive")
	// Passes counted before MarkDown do not count toward rise.
	for i := range 2 {
		s.ReportCheck(backend.CheckResult{OK: true}, 3, 3)
		if s.State() != backend.Down {
			t.Fatalf("up after %d passes with rise 3", i+1)
		}
	}
	s.ReportCheck(backend.CheckResult{OK: true}, 3, 3)
	if s.State() != backend.Up {
		t.Fatalf("still %v after 3 passes with rise 3", s.State())
	}
}

func TestSoftFailure(t *testing.T) {
	tests := []struct {
		name     string
		maxFails int
		window   time.Duration
		// gaps before each failure
		gaps []time.Duration
		// the index of the failure that marks the server down, -1 for none
		wantDownAt int
	}{
		{name: "three within the window", maxFails: 3, window: time.Minute, gaps: []time.Duration{0, 0, 0, 0}, wantDownAt: 2},
		{name: "one is enough", maxFails: 1, window: time.Minute, gaps: []time.Duration{0}, wantDownAt: 0},
		{name: "disabled", maxFails: 0, window: time.Minute, gaps: []time.Duration{0, 0, 0, 0, 0}, wantDownAt: -1},
		{name: "negative disables", maxFails: -1, window: time.Minute, gaps: []time.Duration{0, 0}, wantDownAt: -1},
		{name: "old failures leave the window", maxFails: 3, window: 40 * time.Millisecond,
			gaps: []time.Duration{0, 0, 60 * time.Millisecond, 0}, wantDownAt: -1},
		{name: "the window slides", maxFails: 3, window: 40 * time.Millisecond,
			gaps: []time.Duration{0, 60 * time.Millisecond, 0, 0}, wantDownAt: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, tr := newServer(t)
			s.ReportCheck(backend.CheckResult{OK: true}, 1, 1)
			downAt := -1
			for i, gap := range tt.gaps {
				time.Sleep(gap)
				changed := s.Failure("passive: timeout", tt.maxFails, tt.window, backend.Ejection{})
				// Only the failure that takes the server down asks for a check now.
				select {
				case <-s.Kicked():
					if !changed {
						t.Errorf("failure %d asked for a check without a change", i)
					}
				default:
					if changed {
						t.Errorf("failure %d marked the server down without asking for a check", i)
					}
				}
				if changed {
					if downAt >= 0 {
						t.Errorf("failure %d reported a change again", i)
					}
					downAt = i
				}
			}
			if downAt != tt.wantDownAt {
				t.Fatalf("marked down at failure %d, want %d", downAt, tt.wantDownAt)
			}
			if (s.State() == backend.Down) != (tt.wantDownAt >= 0) {
				t.Errorf("state %v", s.State())
			}
			if tt.wantDownAt >= 0 {
				last := tr.list()[len(tr.list())-1]
				if last.To != backend.Down || !strings.Contains(last.Reason, "passive: timeout") || !strings.Contains(last.Reason, "failures within") {
					t.Errorf("transition %+v", last)
				}
			}
		})
	}
}

// TestSoftFailureCountsWhileChecksPass checks that passing active checks do
// not erase failures seen on live traffic: a server may fail real requests
// while its /status answers.
func TestSoftFailureCountsWhileChecksPass(t *testing.T) {
	s, _ := newServer(t)
	for range 3 {
		s.ReportCheck(backend.CheckResult{OK: true}, 2, 2)
	}
	for i := range 3 {
		changed := s.Failure("answered 500", 3, time.Minute, backend.Ejection{})
		if changed != (i == 2) {
			t.Fatalf("failure %d: changed = %v", i, changed)
		}
		s.ReportCheck(backend.CheckResult{OK: true}, 2, 2)
	}
	if s.State() != backend.Down {
		// The last passing check came after the failure that took it down.
		t.Errorf("state %v after 3 failures within the window", s.State())
	}
}

// TestSoftFailureForgottenAfterRecovery checks that a server that came back
// up does not carry the failures that took it down.
func TestSoftFailureForgottenAfterRecovery(t *testing.T) {
	s, _ := newServer(t)
	s.ReportCheck(backend.CheckResult{OK: true}, 2, 2)
	for range 3 {
		s.Failure("timeout", 3, time.Minute, backend.Ejection{})
	}
	if s.State() != backend.Down {
		t.Fatalf("state %v after 3 soft failures", s.State())
	}
	s.ReportCheck(backend.CheckResult{OK: true}, 2, 2)
	s.ReportCheck(backend.CheckResult{OK: true}, 2, 2)
	if s.State() != backend.Up {
		t.Fatalf("state %v after recovery", s.State())
	}
	for i := range 2 {
		if s.Failure("timeout", 3, time.Minute, backend.Ejection{}) {
			t.Fatalf("marked down by %d failures after recovery, fewer than maxFails", i+1)
		}
	}
	if s.State() != backend.Up {
		t.Errorf("state %v", s.State())
	}
}

func TestKickDoesNotBlock(t *testing.T) {
	s, _ := newServer(t)
	for range 10 {
		s.Kick()
	}
	<-s.Kicked()
	select {
	case <-s.Kicked():
		t.Errorf("more than one kick queued")
	default:
	}
}

func TestStateString(t *testing.T) {
	for st, want := range map[backend.State]string{backend.Unknown: "unknown", backend.Up: "up", backend.Down: "down", backend.State(7): "unknown"} {
		if got := st.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", st, got, want)
		}
	}
}

// fakeConn records the close it gets.
type fakeConn struct {
	mu     sync.Mutex
	code   uint16
	reason string
	calls  int
	done   chan struct{}
}

func newFakeConn() *fakeConn { return &fakeConn{done: make(chan struct{}, 10)} }

func (c *fakeConn) CloseWith(code uint16, reason string) {
	c.mu.Lock()
	c.code, c.reason = code, reason
	c.calls++
	c.mu.Unlock()
	c.done <- struct{}{}
}

func (c *fakeConn) closed() (uint16, string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code, c.reason, c.calls
}

func TestConns(t *testing.T) {
	var cs backend.Conns // the zero value is ready
	if cs.Len() != 0 {
		t.Fatalf("Len() = %d on a zero Conns", cs.Len())
	}
	if n := cs.CloseAll(1012, "empty"); n != 0 {
		t.Fatalf("CloseAll on empty = %d", n)
	}
	a, b, c := newFakeConn(), newFakeConn(), newFakeConn()
	removeA := cs.Add(a)
	removeB := cs.Add(b)
	removeC := cs.Add(c)
	if cs.Len() != 3 {
		t.Fatalf("Len() = %d, want 3", cs.Len())
	}
	removeB()
	removeB() // twice is harmless
	if cs.Len() != 2 {
		t.Fatalf("Len() = %d after a remove, want 2", cs.Len())
	}
	if n := cs.CloseAll(1012, "switch"); n != 2 {
		t.Fatalf("CloseAll() = %d, want 2", n)
	}
	for name, fc := range map[string]*fakeConn{"a": a, "c": c} {
		select {
		case <-fc.done:
		case <-time.After(3 * time.Second):
			t.Fatalf("%s was not closed", name)
		}
		if code, reason, calls := fc.closed(); code != 1012 || reason != "switch" || calls != 1 {
			t.Errorf("%s closed with %d %q (%d calls)", name, code, reason, calls)
		}
	}
	if _, _, calls := b.closed(); calls != 0 {
		t.Errorf("a removed connection was closed")
	}
	// CloseAll does not forget connections: their sessions remove themselves.
	if cs.Len() != 2 {
		t.Errorf("Len() = %d after CloseAll, want 2 until removed", cs.Len())
	}
	removeA()
	removeC()
	if cs.Len() != 0 {
		t.Errorf("Len() = %d after removing all", cs.Len())
	}
}

func TestConnsConcurrent(t *testing.T) {
	var cs backend.Conns
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			remove := cs.Add(newFakeConn())
			_ = cs.Len()
			remove()
		}()
	}
	wg.Wait()
	if cs.Len() != 0 {
		t.Errorf("Len() = %d after every connection removed itself", cs.Len())
	}
}

func TestServerConnsArePerServer(t *testing.T) {
	reg := backend.NewRegistry(nil)
	s1 := reg.Get(backend.Key{Group: "g", Name: "a", Address: "a:80"})
	s2 := reg.Get(backend.Key{Group: "g", Name: "b", Address: "b:80"})
	defer s1.Conns().Add(newFakeConn())()
	if s1.Conns().Len() != 1 || s2.Conns().Len() != 0 {
		t.Errorf("Len() = %d and %d, want 1 and 0", s1.Conns().Len(), s2.Conns().Len())
	}
}

func TestRegistry(t *testing.T) {
	reg := backend.NewRegistry(nil)
	ka := backend.Key{Group: "g", Name: "a", Address: "a:80"}
	kaMoved := backend.Key{Group: "g", Name: "a", Address: "a2:80"}
	kb := backend.Key{Group: "g", Name: "b", Address: "b:80"}
	a := reg.Get(ka)
	if reg.Get(ka) != a {
		t.Fatalf("Get twice gave two servers")
	}
	if a.Key != ka {
		t.Errorf("Key = %+v", a.Key)
	}
	a.MarkDown("test")
	moved := reg.Get(kaMoved)
	if moved == a || !moved.Available() {
		t.Errorf("a server with a new address shares the old one's state")
	}
	b := reg.Get(kb)
	gone := reg.Retain(map[backend.Key]bool{ka: true, kb: true})
	if len(gone) != 1 || gone[0] != moved {
		t.Errorf("Retain returned %v, want only the moved server", gone)
	}
	if reg.Get(ka) != a || reg.Get(kb) != b {
		t.Errorf("Retain dropped a kept server")
	}
	if reg.Get(ka).Available() {
		t.Errorf("a kept server lost its state")
	}
	if reg.Get(kaMoved) == moved {
		t.Errorf("a forgotten server came back")
	}
}

// TestFailedAnswerHoldsDown: a server taken out by its 5xx answers stays
// out for the window although its checks pass, then comes back.
func TestFailedAnswerHoldsDown(t *testing.T) {
	reg := backend.NewRegistry(nil)
	s := reg.Get(backend.Key{Group: "g", Name: "a", Address: "a:1"})
	s.ReportCheck(backend.CheckResult{OK: true}, 2, 2)
	const window = 150 * time.Millisecond
	for range 3 {
		s.Failure("answered 500", 3, window, backend.Ejection{Base: window, Max: window})
	}
	if s.State() != backend.Down || s.HeldUntil().IsZero() {
		t.Fatalf("after 3 failed answers: %v, held until %v", s.State(), s.HeldUntil())
	}
	for range 5 {
		s.ReportCheck(backend.CheckResult{OK: true}, 2, 2)
	}
	if s.State() != backend.Down {
		t.Fatal("passing checks ended the hold early")
	}
	time.Sleep(window)
	s.ReportCheck(backend.CheckResult{OK: true}, 2, 2)
	if s.State() != backend.Up {
		t.Errorf("after the hold, a passing check left it %v", s.State())
	}
	// With no ejection time, failures do not hold: the checks judge.
	for range 3 {
		s.Failure("timeout", 3, window, backend.Ejection{})
	}
	s.ReportCheck(backend.CheckResult{OK: true}, 2, 2)
	s.ReportCheck(backend.CheckResult{OK: true}, 2, 2)
	if s.State() != backend.Up {
		t.Errorf("after soft failures and 2 passing checks: %v, want up", s.State())
	}
}

// TestEjectionGrows: each repeated ejection holds the server down one
// base time longer, up to the maximum, whatever its checks say; a
// failing check ends the hold; time in service forgets repeats.
func TestEjectionGrows(t *testing.T) {
	s, _ := newServer(t)
	s.ReportCheck(backend.CheckResult{OK: true}, 1, 1)
	const base = 60 * time.Millisecond
	e := backend.Ejection{Base: base, Max: 3 * base, Decay: time.Hour}
	for i, want := range []time.Duration{base, 2 * base, 3 * base, 3 * base} {
		start := time.Now()
		if !s.Eject("passive: broken answer", e) {
			t.Fatalf("ejection %d changed nothing", i+1)
		}
		if got := s.HeldUntil().Sub(start); got < want || got > want+base/2 {
			t.Errorf("ejection %d held for %v, want %v", i+1, got, want)
		}
		if r := s.HeldReason(); !strings.Contains(r, "held down") {
			t.Errorf("held reason %q", r)
		}
		for s.State() == backend.Down {
			s.ReportCheck(backend.CheckResult{OK: true}, 1, 1)
			if s.State() == backend.Up && time.Since(start) < want {
				t.Fatalf("ejection %d: back up after %v, held for %v", i+1, time.Since(start), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// A failing check while held: the checks agree it is down, and their
	// passing again readmits it at once.
	s.Eject("passive: refused", e)
	s.ReportCheck(backend.CheckResult{OK: false}, 1, 1)
	s.ReportCheck(backend.CheckResult{OK: true}, 1, 1)
	if s.State() != backend.Up {
		t.Errorf("after a failed then a passing check while held: %v, want up", s.State())
	}
	// Time in service forgets repeats: one per Decay.
	e.Decay = base
	time.Sleep(6 * base)
	start := time.Now()
	s.Eject("passive: broken answer", e)
	if got := s.HeldUntil().Sub(start); got > base+base/2 {
		t.Errorf("after 6 decays in service (5 ejections), held for %v, want %v", got, base)
	}
}
