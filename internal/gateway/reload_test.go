package gateway

import (
	"strings"
	"testing"
)

// TestReloadKeepsElectors: the routing table is the one place that keeps
// a group's elector. A reload hands it to the new table (no switch, same
// epoch); a group that leaves failover mode loses it, and one that comes
// back starts a new one.
func TestReloadKeepsElectors(t *testing.T) {
	master, backup := app(t, "master"), app(t, "failover")
	cfg := testConfig(master, backup)
	g := startGateway(t, cfg, discard())
	e := g.table.Load().Group("app").Elector
	if e == nil || e.Active() != "master" || e.Epoch() != 1 {
		t.Fatalf("elector %v: want master active at epoch 1", e)
	}
	reload := func(text string) {
		t.Helper()
		writeConfig(t, g.path, text)
		if err := g.Reload("test"); err != nil {
			t.Fatal(err)
		}
	}

	reload(cfg + "    failback: {policy: manual}\n")
	if now := g.table.Load().Group("app").Elector; now != e {
		t.Fatalf("a reload replaced the group's elector")
	}
	if e.Active() != "master" || e.Epoch() != 1 || len(e.History()) != 1 {
		t.Errorf("a reload switched: active %q, epoch %d, history %+v", e.Active(), e.Epoch(), e.History())
	}

	reload(strings.Replace(cfg, "  - name: app\n", "  - name: app\n    mode: roundrobin\n", 1))
	if now := g.table.Load().Group("app").Elector; now != nil {
		t.Fatalf("round-robin group with an elector")
	}

	reload(cfg)
	now := g.table.Load().Group("app").Elector
	if now == nil || now == e {
		t.Fatalf("back in failover mode with elector %p (the former was %p): want a new one", now, e)
	}
	if now.Active() != "master" || now.Epoch() != 1 {
		t.Errorf("new elector: active %q, epoch %d", now.Active(), now.Epoch())
	}
	if got := g.State().Groups[0]; got.Active != "master" || got.Epoch != 1 {
		t.Errorf("state %+v: the state reads another elector than the table", got)
	}
}
