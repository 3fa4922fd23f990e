package backend

import (
	"testing"
	"time"
)

func TestAbandon(t *testing.T) {
	s := newServer(Key{Group: "g", Name: "a"}, nil)
	aborted := map[string]bool{}
	abort := func(name string) func() { return func() { aborted[name] = true } }
	gen := s.RoleGen()
	follow := s.Wait(gen, false, 0, nil, abort("follow"))
	pinned := s.Wait(gen, true, 0, nil, abort("pinned"))
	if n := s.Abandon(true); n != 1 || !aborted["follow"] || aborted["pinned"] || !follow.Abandoned() || pinned.Abandoned() {
		t.Fatalf("role loss abandoned %d (%v): want the one that follows the role only", n, aborted)
	}
	// A try that read the generation before the role loss is abandoned
	// as it begins to wait; a pinned one is not.
	if late := s.Wait(gen, false, 0, nil, abort("late")); !late.Abandoned() || !aborted["late"] {
		t.Error("a try picked before the role loss was not abandoned when it began to wait")
	}
	if w := s.Wait(gen, true, 0, nil, abort("late pinned")); w.Abandoned() {
		t.Error("a pinned try was abandoned for a role loss")
	}
	s.transition(Unknown, Up, "test")
	s.MarkDown("test")
	if !pinned.Abandoned() || !aborted["pinned"] {
		t.Error("going down did not abandon the pinned try")
	}
	if w := s.Wait(s.RoleGen(), true, 0, nil, abort("down")); !w.Abandoned() {
		t.Error("a try that begins to wait on a down server was not abandoned")
	}
	if s.Waiting() != 0 {
		t.Errorf("%d still waiting", s.Waiting())
	}
}

func TestStall(t *testing.T) {
	s := newServer(Key{Group: "g", Name: "a"}, nil)
	s.transition(Unknown, Up, "test")
	stalled := make(chan int, 1)
	onStall := func(_ *Server, _ time.Duration, n int) { stalled <- n }
	after := 150 * time.Millisecond
	w := s.Wait(s.RoleGen(), false, after, onStall, func() {})
	// Heads keep coming from the server for twice the bound: no stall.
	for range 6 {
		time.Sleep(after / 3)
		s.Answered(time.Now())
	}
	select {
	case <-stalled:
		t.Fatal("stall reported while other requests were answered")
	default:
	}
	select {
	case n := <-stalled:
		if n != 1 {
			t.Errorf("stall with %d waiting, want 1", n)
		}
	case <-time.After(5 * after):
		t.Fatal("no stall reported once heads stopped")
	}
	s.Done(w, false)
}

// TestWeakCheckTimeout: a check that timed out while the server answered
// live traffic counts half toward fall; other failures count whole.
func TestWeakCheckTimeout(t *testing.T) {
	s := newServer(Key{Group: "g", Name: "a"}, nil)
	s.ReportCheck(CheckResult{OK: true}, 2, 2)
	timeout := func() CheckResult {
		at := time.Now()
		s.Answered(at.Add(time.Millisecond)) // traffic answered while the check ran
		return CheckResult{At: at, Reason: "timeout", Detail: "timeout"}
	}
	for i := range 3 {
		s.ReportCheck(timeout(), 2, 2)
		if s.State() != Up {
			t.Fatalf("down after %d weak timeouts with fall 2", i+1)
		}
	}
	s.ReportCheck(timeout(), 2, 2)
	if s.State() != Down {
		t.Fatalf("still %v after 4 weak timeouts with fall 2", s.State())
	}
	s.ReportCheck(CheckResult{OK: true}, 1, 2)
	time.Sleep(2 * time.Millisecond) // past the last head
	// With no traffic answered, timeouts count whole.
	for range 2 {
		s.ReportCheck(CheckResult{At: time.Now(), Reason: "timeout", Detail: "timeout"}, 2, 2)
	}
	if s.State() != Down {
		t.Errorf("2 timeouts with no traffic answered left it %v, want down", s.State())
	}
}
