package failover_test

import (
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/failover"
)

func TestDecide(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	up := func(name string, since time.Duration) failover.Candidate {
		return failover.Candidate{Name: name, Up: true, UpSince: now.Add(-since)}
	}
	down := func(name string) failover.Candidate { return failover.Candidate{Name: name} }
	after10s := failover.Policy{After: 10 * time.Second}
	manual := failover.Policy{Manual: true}

	tests := []struct {
		name string
		in   failover.Input
		want failover.Decision
	}{
		{
			name: "first available server",
			in:   failover.Input{Candidates: []failover.Candidate{up("a", time.Hour), up("b", time.Hour)}},
			want: failover.Decision{Active: "a", Reason: "first available server", Kind: failover.KindStart, Changed: true},
		},
		{
			name: "first available skips a down master",
			in:   failover.Input{Candidates: []failover.Candidate{down("a"), up("b", time.Hour)}},
			want: failover.Decision{Active: "b", Reason: "first available server", Kind: failover.KindStart, Changed: true},
		},
		{
			name: "no server and none active",
			in:   failover.Input{Candidates: []failover.Candidate{down("a"), down("b")}},
			want: failover.Decision{Reason: "no server available", Kind: failover.KindNone},
		},
		{
			name: "no candidates at all",
			in:   failover.Input{},
			want: failover.Decision{Reason: "no server available", Kind: failover.KindNone},
		},
		{
			name: "active goes down and nothing else is up",
			in:   failover.Input{Candidates: []failover.Candidate{down("a"), down("b")}, Current: "a"},
			want: failover.Decision{Reason: "a is down and no other server is available", Kind: failover.KindNone, Changed: true},
		},
		{
			name: "failover when the master goes down",
			in:   failover.Input{Candidates: []failover.Candidate{down("a"), up("b", time.Hour)}, Current: "a"},
			want: failover.Decision{Active: "b", Reason: "a is down", Kind: failover.KindDown, Changed: true},
		},
		{
			name: "failover takes the next in priority order, not the last",
			in:   failover.Input{Candidates: []failover.Candidate{down("a"), up("b", time.Hour), up("c", time.Hour)}, Current: "a"},
			want: failover.Decision{Active: "b", Reason: "a is down", Kind: failover.KindDown, Changed: true},
		},
		{
			name: "failover skips down servers",
			in:   failover.Input{Candidates: []failover.Candidate{down("a"), down("b"), up("c", time.Hour)}, Current: "a"},
			want: failover.Decision{Active: "c", Reason: "a is down", Kind: failover.KindDown, Changed: true},
		},
		{
			name: "failover happens under manual policy too",
			in:   failover.Input{Candidates: []failover.Candidate{down("a"), up("b", time.Hour)}, Current: "a", Policy: manual},
			want: failover.Decision{Active: "b", Reason: "a is down", Kind: failover.KindDown, Changed: true},
		},
		{
			name: "failover ends an operator hold",
			in:   failover.Input{Candidates: []failover.Candidate{up("a", time.Hour), down("b")}, Current: "b", Hold: true},
			want: failover.Decision{Active: "a", Reason: "b is down", Kind: failover.KindDown, Changed: true},
		},
		{
			name: "current removed from the group",
			in:   failover.Input{Candidates: []failover.Candidate{up("a", time.Hour), up("b", time.Hour)}, Current: "old"},
			want: failover.Decision{Active: "a", Reason: "old was removed from the group", Kind: failover.KindRemoved, Changed: true},
		},
		{
			name: "current removed while held",
			in:   failover.Input{Candidates: []failover.Candidate{down("a"), up("b", time.Hour)}, Current: "old", Hold: true},
			want: failover.Decision{Active: "b", Reason: "old was removed from the group", Kind: failover.KindRemoved, Changed: true},
		},
		{
			name: "master stays active",
			in:   failover.Input{Candidates: []failover.Candidate{up("a", time.Hour), up("b", time.Hour)}, Current: "a"},
			want: failover.Decision{Active: "a", Reason: "current server is the preferred available one"},
		},
		{
			name: "failover stays while master is down",
			in:   failover.Input{Candidates: []failover.Candidate{down("a"), up("b", time.Hour)}, Current: "b"},
			want: failover.Decision{Active: "b", Reason: "current server is the preferred available one"},
		},
		{
			name: "lower server stays active over a worse one",
			in:   failover.Input{Candidates: []failover.Candidate{down("a"), up("b", time.Hour), up("c", time.Hour)}, Current: "b"},
			want: failover.Decision{Active: "b", Reason: "current server is the preferred available one"},
		},
		{
			name: "auto failback at once",
			in:   failover.Input{Candidates: []failover.Candidate{up("a", 0), up("b", time.Hour)}, Current: "b", Now: now},
			want: failover.Decision{Active: "a", Reason: "failback: a is up again", Kind: failover.KindFailback, Changed: true},
		},
		{
			name: "preference order: failback to the best available server",
			in:   failover.Input{Candidates: []failover.Candidate{down("a"), up("b", 0), up("c", time.Hour)}, Current: "c", Now: now},
			want: failover.Decision{Active: "b", Reason: "failback: b is up again", Kind: failover.KindFailback, Changed: true},
		},
		{
			name: "auto after: master not up long enough",
			in: failover.Input{Candidates: []failover.Candidate{up("a", 4*time.Second), up("b", time.Hour)}, Current: "b",
				Policy: after10s, Now: now},
			want: failover.Decision{Active: "b", Reason: "a must stay up 10s before failback", Pending: "a",
				Recheck: now.Add(6 * time.Second)},
		},
		{
			name: "auto after: master just came up",
			in: failover.Input{Candidates: []failover.Candidate{up("a", 0), up("b", time.Hour)}, Current: "b",
				Policy: after10s, Now: now},
			want: failover.Decision{Active: "b", Reason: "a must stay up 10s before failback", Pending: "a",
				Recheck: now.Add(10 * time.Second)},
		},
		{
			name: "auto after: delay over exactly",
			in: failover.Input{Candidates: []failover.Candidate{up("a", 10*time.Second), up("b", time.Hour)}, Current: "b",
				Policy: after10s, Now: now},
			want: failover.Decision{Active: "a", Reason: "failback: a stayed up for 10s", Kind: failover.KindFailback, Changed: true},
		},
		{
			name: "auto after: delay long over (an undrain made it available): says how long it was up",
			in: failover.Input{Candidates: []failover.Candidate{up("a", time.Minute), up("b", time.Hour)}, Current: "b",
				Policy: after10s, Now: now},
			want: failover.Decision{Active: "a", Reason: "failback: a available, up for 1m0s (failback after 10s)", Kind: failover.KindFailback, Changed: true},
		},
		{
			name: "auto after does not delay a failover",
			in: failover.Input{Candidates: []failover.Candidate{up("a", time.Hour), up("b", 0)}, Current: "",
				Policy: after10s, Now: now},
			want: failover.Decision{Active: "a", Reason: "first available server", Kind: failover.KindStart, Changed: true},
		},
		{
			name: "manual: master waits for an operator",
			in: failover.Input{Candidates: []failover.Candidate{up("a", time.Hour), up("b", time.Hour)}, Current: "b",
				Policy: manual, Now: now},
			want: failover.Decision{Active: "b", Reason: "failback policy manual: a waits for an operator", Pending: "a"},
		},
		{
			name: "operator hold keeps the current server",
			in: failover.Input{Candidates: []failover.Candidate{up("a", time.Hour), up("b", time.Hour)}, Current: "b",
				Hold: true, Now: now},
			want: failover.Decision{Active: "b", Reason: "held on b by operator; a waits for failback", Pending: "a"},
		},
		{
			name: "operator hold wins over auto after",
			in: failover.Input{Candidates: []failover.Candidate{up("a", time.Hour), up("b", time.Hour)}, Current: "b",
				Hold: true, Policy: after10s, Now: now},
			want: failover.Decision{Active: "b", Reason: "held on b by operator; a waits for failback", Pending: "a"},
		},
		{
			name: "FailbackNow under manual",
			in: failover.Input{Candidates: []failover.Candidate{up("a", time.Hour), up("b", time.Hour)}, Current: "b",
				Policy: manual, FailbackNow: true, Now: now},
			want: failover.Decision{Active: "a", Reason: "failback to a requested by operator", Kind: failover.KindFailback, Changed: true},
		},
		{
			name: "FailbackNow ends a hold",
			in: failover.Input{Candidates: []failover.Candidate{up("a", time.Hour), up("b", time.Hour)}, Current: "b",
				Hold: true, FailbackNow: true, Now: now},
			want: failover.Decision{Active: "a", Reason: "failback to a requested by operator", Kind: failover.KindFailback, Changed: true},
		},
		{
			name: "FailbackNow skips the after delay",
			in: failover.Input{Candidates: []failover.Candidate{up("a", time.Second), up("b", time.Hour)}, Current: "b",
				Policy: after10s, FailbackNow: true, Now: now},
			want: failover.Decision{Active: "a", Reason: "failback to a requested by operator", Kind: failover.KindFailback, Changed: true},
		},
		{
			name: "FailbackNow when already on the preferred server",
			in: failover.Input{Candidates: []failover.Candidate{up("a", time.Hour), up("b", time.Hour)}, Current: "a",
				FailbackNow: true, Now: now},
			want: failover.Decision{Active: "a", Reason: "current server is the preferred available one"},
		},
		{
			name: "FailbackNow goes to the best available, not a down master",
			in: failover.Input{Candidates: []failover.Candidate{down("a"), up("b", time.Hour), up("c", time.Hour)}, Current: "c",
				Policy: manual, FailbackNow: true, Now: now},
			want: failover.Decision{Active: "b", Reason: "failback to b requested by operator", Kind: failover.KindFailback, Changed: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := failover.Decide(tt.in)
			if got != tt.want {
				t.Errorf("Decide:\n got %+v\nwant %+v", got, tt.want)
			}
			if got.Changed != (got.Active != tt.in.Current) {
				t.Errorf("Changed = %v with Active %q and Current %q", got.Changed, got.Active, tt.in.Current)
			}
		})
	}
}

// TestDecideIsPure checks that Decide leaves its input alone.
func TestDecideIsPure(t *testing.T) {
	cands := []failover.Candidate{{Name: "a"}, {Name: "b", Up: true}}
	in := failover.Input{Candidates: cands, Current: "a"}
	first := failover.Decide(in)
	second := failover.Decide(in)
	if first != second {
		t.Errorf("two calls disagree: %+v and %+v", first, second)
	}
	if cands[0] != (failover.Candidate{Name: "a"}) || cands[1] != (failover.Candidate{Name: "b", Up: true}) {
		t.Errorf("candidates changed: %+v", cands)
	}
}
