package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/admin"
	"github.com/tandemproxy/tandem/internal/failover"
	"github.com/tandemproxy/tandem/internal/kube"
	"go.yaml.in/yaml/v3"
)

var now = time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)

func noPaint(_, s string) string { return s }

// cannedState is a gateway's state: a failover group held by an operator
// on its failover with the master waiting, and a round-robin group.
func cannedState() admin.State {
	return admin.State{Groups: []admin.GroupState{
		{
			Name: "sense", Mode: "failover", Active: "sen1", Epoch: 7, Failback: "auto after 5s", Hold: true, Pending: "sen2",
			Reason: "held on sen1 by operator; sen2 waits for failback",
			Servers: []admin.ServerState{
				{Name: "sen2", Address: "10.0.0.2:8079", State: "up", Websockets: 0,
					LastCheck: &admin.CheckView{At: now.Add(-400 * time.Millisecond), OK: true, Status: 200, LatencyMS: 1.25, Detail: `{"version":"1.2"}`}},
				{Name: "sen1", Address: "10.0.0.1:8079", State: "up", Websockets: 3, Drained: false},
			},
		},
		{
			Name: "web", Mode: "roundrobin", Failback: "auto",
			Servers: []admin.ServerState{
				{Name: "w1", Address: "10.0.1.1:80", State: "up"},
				{Name: "w2", Address: "10.0.1.2:80", State: "down"},
			},
		},
	}}
}

func TestRenderStatus(t *testing.T) {
	tests := []struct {
		name  string
		state func() admin.State
		wide  bool
		want  []string
		not   []string
	}{
		{
			name:  "table: the hold and what ends it, no failback policy said to be running",
			state: cannedState,
			want: []string{
				"GROUP  SERVER  STATE  ROLE",
				"sense  sen2    up     standby",
				"sense  sen1    up     ACTIVE",
				"web    w2      down   roundrobin",
				"sense: active sen1, epoch 7; OPERATOR HOLD on sen1: no automatic failback until sen1 fails or someone runs `failback sense` (failback auto after 5s suspended); sen2 waits for `failback sense`",
				"web: round robin over 1 of 2 servers",
			},
			not: []string{"10.0.0.2", "cluster:", "REPLICA"},
		},
		{
			name:  "wide: addresses, last checks, websockets",
			state: cannedState,
			wide:  true,
			want: []string{
				"GROUP  SERVER  ADDRESS        STATE  ROLE        WS  LAST CHECK",
				`sense  sen2    10.0.0.2:8079  up     standby     0   ok 1.2ms 400ms ago {"version":"1.2"}`,
				"sense  sen1    10.0.0.1:8079  up     ACTIVE      3   -",
			},
			not: []string{"POD"},
		},
		{
			name: "a server ejected by its traffic: held down until when and why, in table and wide",
			state: func() admin.State {
				st := cannedState()
				at := now.Add(42 * time.Second)
				st.Groups[0].Hold = false
				st.Groups[0].Servers[0].State = "down"
				st.Groups[0].Servers[0].HeldUntil, st.Groups[0].Servers[0].HeldReason = &at, "ejected by its traffic 2 times in a row: held down 1m0s"
				st.Groups[1].Servers[1].HeldUntil = &at
				return st
			},
			want: []string{
				"sense  sen2    down,held  standby",
				"sense  sen1    up         ACTIVE",
				"sense: sen2 held down until 14:00:42 (in 42s): ejected by its traffic 2 times in a row: held down 1m0s",
				"web    w2      down,held  roundrobin",
				"web: w2 held down until 14:00:42 (in 42s)\n",
			},
			not: []string{"sen1 held", "w1 held"},
		},
		{
			name: "wide: the hold too",
			state: func() admin.State {
				st := cannedState()
				at := now.Add(42 * time.Second)
				st.Groups[0].Servers[0].State = "down"
				st.Groups[0].Servers[0].HeldUntil, st.Groups[0].Servers[0].HeldReason = &at, "ejected by its traffic once: held down 1m0s"
				return st
			},
			wide: true,
			want: []string{
				`sense  sen2    10.0.0.2:8079  down,held  standby     0   ok 1.2ms 400ms ago {"version":"1.2"}`,
				"sense: sen2 held down until 14:00:42 (in 42s): ejected by its traffic once: held down 1m0s",
			},
		},
		{
			name: "pending failback with a time, no hold",
			state: func() admin.State {
				st := cannedState()
				at := now.Add(3 * time.Second)
				st.Groups[0].Hold, st.Groups[0].PendingAt = false, &at
				return st
			},
			want: []string{"sense: active sen1, epoch 7; failback auto after 5s; sen2 fails back in 3s"},
			not:  []string{"HOLD"},
		},
		{
			name: "coordination: leader, this replica, fence, epochs, acks, liveness and views",
			state: func() admin.State {
				st := cannedState()
				st.Groups[0].Servers[0].Pod = "sense-7f9c-abcde"
				st.Cluster = &kube.Status{Identity: "gw-b", Leader: "gw-a", LastContact: now.Add(-300 * time.Millisecond),
					Replicas: []kube.ReplicaStatus{
						{Identity: "gw-a", Live: true, Renewed: now.Add(-time.Second), Acked: map[string]uint64{"sense": 7}},
						{Identity: "gw-b", Live: true, Renewed: now.Add(-500 * time.Millisecond), Acked: map[string]uint64{"sense": 7}, Down: map[string][]string{"sense": {"sen2"}}},
						{Identity: "gw-c", Live: false, Renewed: now.Add(-42 * time.Second), Acked: map[string]uint64{"sense": 6}},
					}}
				return st
			},
			wide: true,
			want: []string{
				"ADDRESS        STATE  ROLE        WS  LAST CHECK                            POD",
				"sense-7f9c-abcde",
				"cluster: leader gw-a; this replica gw-b (follower), not fenced, last read of the coordination state 300ms ago",
				"epoch: sense=7",
				"REPLICA        LIVE  RENEWED    ACKED EPOCH  SEES DOWN",
				"gw-a (leader)  yes   1s ago     sense=7      -",
				"gw-b (this)    yes   500ms ago  sense=7      sense: sen2",
				"gw-c           no    42s ago    sense=6      -",
			},
		},
		{
			name: "a fenced replica says so on the group and the cluster",
			state: func() admin.State {
				st := cannedState()
				st.Groups[0].Fenced, st.Groups[0].Hold = true, false
				st.Cluster = &kube.Status{Identity: "gw-b", Leader: "gw-a", Fenced: true, LastContact: now.Add(-6 * time.Second)}
				return st
			},
			want: []string{
				"sense  sen1    up     ACTIVE,fenced",
				"sense: FENCED: this replica lost sight of the coordination state and sends to no server (503)",
				"this replica gw-b (follower), FENCED (sends to no server), last read of the coordination state 6s ago",
			},
		},
		{
			name: "the leader itself, during a two-phase switch",
			state: func() admin.State {
				st := cannedState()
				st.Groups[0].Active, st.Groups[0].Revoking, st.Groups[0].Hold = "", true, false
				st.Cluster = &kube.Status{Identity: "gw-a", Leader: "gw-a", Leading: true, LastContact: now,
					Replicas: []kube.ReplicaStatus{{Identity: "gw-a", Live: true, Renewed: now, Acked: map[string]uint64{"sense": 8}}}}
				return st
			},
			want: []string{
				"sense: switching: the former server's role is revoked, the new one is granted once every replica has let go (epoch 7)",
				"cluster: leader gw-a; this replica gw-a (leader), not fenced",
				"gw-a (leader, this)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := renderStatus(&b, tt.state(), tt.wide, now, noPaint); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestPrintStructured: json and yaml carry the same fields under the
// admin API's names, the cluster's included.
func TestPrintStructured(t *testing.T) {
	st := cannedState()
	st.Cluster = &kube.Status{Identity: "gw-b", Leader: "gw-a", Fenced: true,
		Replicas: []kube.ReplicaStatus{{Identity: "gw-a", Live: true, Acked: map[string]uint64{"sense": 7}, Down: map[string][]string{"sense": {"sen2"}}}}}
	for _, format := range []string{"json", "yaml"} {
		t.Run(format, func(t *testing.T) {
			var b bytes.Buffer
			if err := printStructured(&b, format, st); err != nil {
				t.Fatal(err)
			}
			var back map[string]any
			var err error
			if format == "json" {
				err = json.Unmarshal(b.Bytes(), &back)
			} else {
				err = yaml.Unmarshal(b.Bytes(), &back)
				if strings.Contains(b.String(), ": {") || strings.Contains(b.String(), ": [") {
					t.Errorf("yaml output has flow style:\n%s", b.String())
				}
			}
			if err != nil {
				t.Fatalf("%s does not parse back: %v\n%s", format, err, b.String())
			}
			var want map[string]any
			j, _ := json.Marshal(st)
			json.Unmarshal(j, &want)
			wj, _ := json.Marshal(want)
			gj, _ := json.Marshal(back)
			if string(wj) != string(gj) {
				t.Errorf("%s output differs from the API's JSON:\n got %s\nwant %s", format, gj, wj)
			}
			for _, key := range []string{"operatorHold", "pendingFailback", "cluster", "leader", "fenced", "acked"} {
				if !strings.Contains(b.String(), key) {
					t.Errorf("%s output lacks %q", format, key)
				}
			}
		})
	}
}

// TestRenderHistory: every time has its date and zone.
func TestRenderHistory(t *testing.T) {
	var b bytes.Buffer
	h := []failover.Switch{{At: now, From: "", To: "sen2", Reason: "first available server", Epoch: 1, By: "start"},
		{At: now.Add(time.Minute), From: "sen2", To: "sen1", Reason: "sen2 is down", Epoch: 2, By: "health: sen2 down (passive: connection refused)"}}
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	if err := renderHistory(&b, h, paris); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"2026-12-01 15:00:00.000 CET  1      -     sen2", "2026-12-01 15:01:00.000 CET  2      sen2  sen1", "passive: connection refused"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("history lacks %q:\n%s", w, b.String())
		}
	}
}
