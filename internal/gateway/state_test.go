package gateway

import (
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/admin"
	"github.com/tandemproxy/tandem/internal/backend"
)

// TestStateShowsHold: a server ejected by its traffic stays down while its
// checks pass; the state says until when and why, so an operator sees it.
func TestStateShowsHold(t *testing.T) {
	g := startGateway(t, testConfig(app(t, "master"), app(t, "failover")), discard())
	s := g.table.Load().Group("app").Server("master")
	if s.State() != backend.Up {
		t.Fatalf("master %v after its first check", s.State())
	}
	before := time.Now()
	s.Eject("passive: connection refused", backend.Ejection{Base: time.Minute})
	s.ReportCheck(backend.CheckResult{At: time.Now(), OK: true, Status: 200}, 1, 1)

	var ss admin.ServerState
	for _, gs := range g.State().Groups {
		for _, x := range gs.Servers {
			if x.Name == "master" {
				ss = x
			}
		}
	}
	if ss.State != "down" || ss.LastCheck == nil || !ss.LastCheck.OK {
		t.Fatalf("master %+v: want down with a passing check", ss)
	}
	if ss.HeldUntil == nil || ss.HeldUntil.Before(before.Add(time.Minute)) || ss.HeldUntil.After(time.Now().Add(time.Minute)) {
		t.Errorf("heldUntil %v, want a minute after the ejection (%v)", ss.HeldUntil, before)
	}
	if want := "ejected by its traffic once: held down 1m0s"; ss.HeldReason != want {
		t.Errorf("heldReason %q, want %q", ss.HeldReason, want)
	}
	// The other server is held by nothing: the state says nothing.
	for _, gs := range g.State().Groups {
		for _, x := range gs.Servers {
			if x.Name == "failover" && (x.HeldUntil != nil || x.HeldReason != "") {
				t.Errorf("failover %+v: held", x)
			}
		}
	}
}
