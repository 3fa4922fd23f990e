package proxy

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/failover"
	"github.com/tandemproxy/tandem/internal/metrics"
	"github.com/tandemproxy/tandem/internal/route"
	"github.com/tandemproxy/tandem/internal/servertest"
)

// noLeader is a follower's Remote that never answers: the test publishes
// decisions by Adopt.
type noLeader struct{}

func (noLeader) ViewChanged(string, string)            {}
func (noLeader) Request(string, failover.Action) error { return errors.New("no leader") }

// TestHoldAcrossTableChange: a follower's request waiting for the leader's
// decision (it names a server this replica's table lacks) learns of a
// newer table and picks from it; if it must wait there too, it waits only
// what is left of its one hold, not a fresh hold at each table change.
func TestHoldAcrossTableChange(t *testing.T) {
	const holdWait = 2 * time.Second
	const changeAfter = 1200 * time.Millisecond
	base := "listeners: [{name: web, address: \"127.0.0.1:0\"}]\ngroups:\n  - name: app\n    health: {disabled: true}\n    servers:\n" +
		"      - {name: master, address: \"" + servertest.ClosedAddr(t) + "\"}\n" +
		"      - {name: backup, address: \"" + servertest.ClosedAddr(t) + "\", backup: true}\n"
	build := func(yaml string, e *failover.Elector, reg *backend.Registry) *route.Table {
		cfg, err := config.Parse("t.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		tbl := route.Build(cfg, reg, func(string) *failover.Elector { return e })
		tbl.Group("app").HoldWait = holdWait
		return tbl
	}
	e := failover.NewElector("app", nil)
	e.Follow(noLeader{})
	reg := backend.NewRegistry(nil)
	old := build(base, e, reg)
	old.Group("app").Elector.SetView(old.Group("app").View, "test")
	e.Adopt(failover.Published{Committed: failover.Committed{Active: "master-2", Epoch: 8}})
	var cur atomic.Pointer[route.Table]
	cur.Store(old)
	p := New(cur.Load, slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()), config.EngineTandem)
	front := httptest.NewServer(p)
	defer front.Close()

	go func() {
		time.Sleep(changeAfter)
		// The newer table has master-2, down here: the request waits again.
		newer := build(base+"      - {name: master-2, address: \""+servertest.ClosedAddr(t)+"\"}\n", e, reg)
		newer.Group("app").Server("master-2").MarkDown("test: not ready yet")
		cur.Store(newer)
		old.Retire()
	}()
	start := time.Now()
	resp, err := http.Get(front.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: no server to send to", resp.StatusCode)
	}
	if took < changeAfter {
		t.Fatalf("answered after %v, before the table changed: the request did not wait, the test proves nothing", took)
	}
	// One hold ends 2 s from the start; a fresh one after the change would
	// end at 3.2 s. The bound lies just short of that: a loaded machine
	// may answer late, but not a whole hold late.
	if took >= changeAfter+holdWait-200*time.Millisecond {
		t.Errorf("the request waited %v in all, want about one hold (%v): the table change began a new one", took, holdWait)
	}
}
