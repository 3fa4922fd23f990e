package route_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/failover"
	"github.com/tandemproxy/tandem/internal/route"
)

const followerConfig = `listeners: [{name: web, address: ":8080"}]
groups:
  - name: app
    hosts: [app.example.com]
    servers:
      - {name: master, address: "master.local:80"}
      - {name: failover, address: "failover.local:80", backup: true}
`

// leader is a Remote that never answers: the tests publish by Adopt.
type leader struct{}

func (leader) ViewChanged(string, string)            {}
func (leader) Request(string, failover.Action) error { return errors.New("no leader") }

// followerGroup is group app whose elector follows published decisions,
// starting with master active at epoch 7.
func followerGroup(t *testing.T, holdWait time.Duration) *route.Group {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(followerConfig))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	e := failover.NewElector("app", nil)
	e.Follow(leader{})
	tbl := route.Build(cfg, backend.NewRegistry(nil), func(string) *failover.Elector { return e })
	g := tbl.Group("app")
	g.Elector.SetView(g.View, "test")
	g.HoldWait = holdWait
	if e.Active() != "" {
		t.Fatalf("a follower decided on its own: %q", e.Active())
	}
	e.Adopt(failover.Published{Committed: failover.Committed{Active: "master", Epoch: 7}})
	return g
}

func TestPickFollower(t *testing.T) {
	const holdWait = 300 * time.Millisecond
	commit := func(active string, epoch uint64) *failover.Published {
		return &failover.Published{Committed: failover.Committed{Active: active, Epoch: epoch}}
	}
	tests := []struct {
		name    string
		down    []string            // marked down locally
		tried   []string            // already tried by this request
		first   *failover.Published // adopted before Pick
		later   *failover.Published // adopted 50ms into Pick
		want    string              // server picked; "" for ErrNoServer
		epoch   uint64
		minTook time.Duration
		maxTook time.Duration
	}{
		{
			name: "the committed active server with its epoch",
			want: "master", epoch: 7,
			maxTook: holdWait / 2,
		},
		{
			name: "the active server down here: no fallback, wait for the leader's decision",
			down: []string{"master"}, later: commit("failover", 8),
			want: "failover", epoch: 8,
			minTook: 50 * time.Millisecond, maxTook: holdWait,
		},
		{
			name:  "the active server tried already: wait for the leader's decision",
			tried: []string{"master"}, later: commit("failover", 8),
			want: "failover", epoch: 8,
			minTook: 50 * time.Millisecond, maxTook: holdWait,
		},
		{
			name:    "no new decision: no server after the hold",
			down:    []string{"master"},
			minTook: holdWait, maxTook: 10 * holdWait,
		},
		{
			name: "a decision that still names the down server: wait on, then no server",
			down: []string{"master"}, later: commit("master", 8),
			minTook: holdWait, maxTook: 10 * holdWait,
		},
		{
			name:    "fenced: no server at once",
			first:   &failover.Published{Committed: failover.Committed{Active: "master", Epoch: 7, Fenced: true}},
			maxTook: holdWait / 2,
		},
		{
			name:  "revoking: wait for the grant",
			first: &failover.Published{Committed: failover.Committed{Epoch: 8, Revoking: true}},
			later: commit("failover", 8),
			want:  "failover", epoch: 8,
			minTook: 50 * time.Millisecond, maxTook: holdWait,
		},
		{
			name:    "revoking without a grant: no server after the hold",
			first:   &failover.Published{Committed: failover.Committed{Epoch: 8, Revoking: true}},
			minTook: holdWait, maxTook: 10 * holdWait,
		},
		{
			name:    "no active server and none available here: no server at once",
			down:    []string{"master", "failover"},
			first:   commit("", 8),
			maxTook: holdWait / 2,
		},
		{
			name:  "no active server, one available here: wait for the leader",
			down:  []string{"master"},
			first: commit("", 8), later: commit("failover", 9),
			want: "failover", epoch: 9,
			minTook: 50 * time.Millisecond, maxTook: holdWait,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := followerGroup(t, holdWait)
			for _, d := range tt.down {
				g.Server(d).MarkDown("test")
			}
			var tried []*backend.Server
			for _, n := range tt.tried {
				tried = append(tried, g.Server(n))
			}
			if tt.first != nil {
				g.Elector.Adopt(*tt.first)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				if tt.later != nil {
					time.Sleep(50 * time.Millisecond)
					g.Elector.Adopt(*tt.later)
				}
			}()
			start := time.Now()
			c, err := g.Pick(context.Background(), "app.example.com", "", tried)
			took := time.Since(start)
			<-done
			if tt.want == "" {
				if !errors.Is(err, route.ErrNoServer) {
					t.Errorf("Pick = %+v, %v; want ErrNoServer", c, err)
				}
			} else {
				if err != nil || c.Server == nil || c.Server.Name != tt.want || c.Epoch != tt.epoch || !c.HasEpoch || c.Pinned {
					t.Errorf("Pick = %+v, %v; want %s at epoch %d", c, err, tt.want, tt.epoch)
				}
			}
			if took < tt.minTook || took > tt.maxTook {
				t.Errorf("Pick took %v, want between %v and %v", took, tt.minTook, tt.maxTook)
			}
		})
	}
}

func TestPickFollowerContextEnds(t *testing.T) {
	g := followerGroup(t, 10*time.Second)
	g.Server("master").MarkDown("test")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := g.Pick(ctx, "app.example.com", "", nil)
	if !errors.Is(err, route.ErrNoServer) {
		t.Errorf("Pick: %v, want ErrNoServer", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Pick waited %v after its context ended", took)
	}
}

// TestPickFencedWhileWaiting: a request waiting for the leader's decision
// is not sent when the replica gets fenced meanwhile, even if its active
// server looks healthy again here: the decision in hand may be stale.
func TestPickFencedWhileWaiting(t *testing.T) {
	g := followerGroup(t, 2*time.Second)
	master := g.Server("master")
	master.MarkDown("test: refused")
	back := make(chan bool, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		for range 2 {
			master.ReportCheck(backend.CheckResult{OK: true}, 2, 2)
		}
		back <- master.Available()
		cur := g.Elector.Current()
		g.Elector.Adopt(failover.Published{Committed: failover.Committed{Active: cur.Active, Epoch: cur.Epoch, Fenced: true}})
	}()
	c, err := g.Pick(context.Background(), "app.example.com", "", nil)
	if !<-back {
		t.Fatal("the master did not come back up locally: the test proves nothing")
	}
	if !errors.Is(err, route.ErrNoServer) {
		t.Fatalf("Pick on a replica fenced while waiting = %v, %v; want ErrNoServer", c.Server, err)
	}
}

// TestPickTableChanged: the leader's decision names a server this
// replica's table lacks yet (its discovery lags). A request waiting for it
// learns of the newer table that has it at once, rather than waiting out
// HoldWait for a decision that would never come, and picks it from there.
func TestPickTableChanged(t *testing.T) {
	const holdWait = 3 * time.Second
	cfg, err := config.Parse("t.yaml", []byte(followerConfig))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	e := failover.NewElector("app", nil)
	e.Follow(leader{})
	reg := backend.NewRegistry(nil)
	old := route.Build(cfg, reg, func(string) *failover.Elector { return e })
	g := old.Group("app")
	g.Elector.SetView(g.View, "test")
	g.HoldWait = holdWait
	e.Adopt(failover.Published{Committed: failover.Committed{Active: "master-2", Epoch: 8}})

	picked := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := g.Pick(context.Background(), "app.example.com", "", nil)
		picked <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cfg2, err := config.Parse("t.yaml", []byte(followerConfig+"      - {name: master-2, address: \"master2.local:80\"}\n"))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	newer := route.Build(cfg2, reg, func(string) *failover.Elector { return e })
	old.Retire()
	err = <-picked
	tc, ok := errors.AsType[route.TableChanged](err)
	if !ok || !errors.Is(err, route.ErrTableChanged) {
		t.Fatalf("pick from the old table: %v, want a TableChanged", err)
	}
	if d := tc.HoldUntil.Sub(start); d < holdWait-100*time.Millisecond || d > holdWait+time.Second {
		t.Errorf("the hold would end %v after the pick began, want HoldWait (%v): the new table's pick waits until then", d, holdWait)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the waiting request learnt of the new table after %v, want well within HoldWait %v", took, holdWait)
	}
	ng := newer.Group("app")
	ng.HoldWait = holdWait
	c, err := ng.Pick(context.Background(), "app.example.com", "", nil)
	if err != nil || c.Server.Name != "master-2" || c.Epoch != 8 {
		t.Fatalf("pick from the new table: %+v, %v; want master-2 at epoch 8", c, err)
	}
}
