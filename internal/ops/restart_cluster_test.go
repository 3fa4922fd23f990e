package ops_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/kube"
	"github.com/tandemproxy/tandem/internal/ops"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// leaderSim stands in for the gateway's leader and one replica, as far as
// the cluster shows them: it watches the pair's pods, sees a role up
// 500ms after its pod is ready (health checks rising; a new pod has fresh
// health) and down at once,
// switches away from a failed active server in two phases (a revocation
// for 300ms, then the grant) and publishes all of it in the coordination
// objects, with internal/kube's shapes. Its /status answers while the
// active server has a ready pod.
type leaderSim struct {
	mu         sync.Mutex
	active, to string
	epoch      uint64
	revoking   bool
	revokedAt  time.Time
	pod        map[string]string    // role -> the ready pod it checks
	ready      map[string]time.Time // role -> that pod ready since
	up         map[string]bool
	upAt       map[string][]time.Time
	switches   []string
}

func (s *leaderSim) run(t *testing.T, ctx context.Context, b *bed, ns string) {
	co := coordination{cs: b.cs, ns: ns}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		pods, err := b.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=sense"})
		if err == nil {
			now := time.Now()
			s.mu.Lock()
			ready := map[string]string{} // role -> a ready pod's UID, the one seen before first
			for i := range pods.Items {
				if p := &pods.Items[i]; ops.PodReady(p) && (ready[p.Labels[ops.LabelRole]] == "" || string(p.UID) == s.pod[p.Labels[ops.LabelRole]]) {
					ready[p.Labels[ops.LabelRole]] = string(p.UID)
				}
			}
			for _, r := range []string{"master", "failover"} {
				if ready[r] != s.pod[r] { // another pod: fresh health
					s.pod[r], s.up[r] = ready[r], false
					s.ready[r] = now
				}
				if ready[r] != "" && now.Sub(s.ready[r]) >= 500*time.Millisecond && !s.up[r] {
					s.up[r] = true
					s.upAt[r] = append(s.upAt[r], now)
				}
			}
			switch {
			case s.revoking && now.Sub(s.revokedAt) >= 300*time.Millisecond:
				s.active, s.revoking, s.to = s.to, false, ""
			case !s.revoking && s.active != "" && !s.up[s.active]:
				other := map[string]string{"master": "failover", "failover": "master"}[s.active]
				if s.up[other] {
					s.switches = append(s.switches, s.active+" -> "+other)
					s.epoch++
					s.active, s.revoking, s.to, s.revokedAt = "", true, other, now
				}
			}
			d := kube.Decision{Active: s.active, Epoch: s.epoch, Revoking: s.revoking, To: s.to, Leader: "gw-0"}
			up := map[string]bool{"master": s.up["master"], "failover": s.up["failover"]}
			since := map[string]time.Time{}
			for r, ats := range s.upAt {
				if s.up[r] {
					since[r] = ats[len(ats)-1]
				}
			}
			s.mu.Unlock()
			if err := co.write(ctx, map[string]kube.Decision{"sense": d}, map[string]map[string]any{"gw-0": view("sense", d.Epoch, up, since)}, now); err != nil && ctx.Err() == nil {
				t.Logf("sim: %v", err)
			}
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

func (s *leaderSim) version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != "" && s.up[s.active] {
		return "1"
	}
	return ""
}

// testRestart: a stateless component and a master/failover pair restarted
// in one command: the stateless one first, then the standby (failover),
// then the master, one role at a time: the second only once the gateway
// settled with the first seen up again; never both roles without a ready
// pod.
func testRestart(t *testing.T, ctx context.Context, b *bed) {
	const ns = "rs"
	b.namespace(t, ctx, ns)
	b.deploy(t, ctx, ns, "sense-master", "sense", 1, "sense:1", role("master"), recreate, onNode("kwok-node-0"))
	b.deploy(t, ctx, ns, "sense-failover", "sense", 1, "sense:1", role("failover"), recreate, onNode("kwok-node-1"))
	b.deploy(t, ctx, ns, "web", "web", 2, "web:1")
	b.ready(t, ctx, ns, "sense-master", "sense-failover", "web")

	sim := &leaderSim{active: "master", epoch: 1, pod: map[string]string{}, ready: map[string]time.Time{}, up: map[string]bool{}, upAt: map[string][]time.Time{}}
	sctx, stop := context.WithCancel(ctx)
	simDone := make(chan struct{})
	go func() { defer close(simDone); sim.run(t, sctx, b, ns) }()
	defer func() { stop(); <-simDone }()
	gw := statusServer(t, sim.version)
	eventually(t, ctx, func() error {
		_, err := (&ops.Gateway{URL: gw.URL}).Check(ctx)
		return err
	})

	// --dry-run: the plan, and nothing touched.
	log := recordPods(t, ctx, b.cs, ns)
	out, err := b.cli(t, "restart", "sense-master", "sense-failover", "web", "-n", ns, "--dry-run", "--gateway", gw.URL)
	if err != nil {
		t.Fatal(err)
	}
	if i, j := strings.Index(out, "deployment/sense-failover"), strings.Index(out, "deployment/sense-master"); i < 0 || j < 0 || i > j {
		t.Errorf("dry run: the standby should come first:\n%s", out)
	}
	time.Sleep(time.Second)
	if evs := log.snapshot(); len(evs) != 4 { // the 4 pods listed at the start
		t.Fatalf("dry run changed pods: %d pod events", len(evs))
	}
	original := map[string]bool{}
	for _, e := range log.snapshot() {
		original[e.uid] = true
	}

	out, err = b.cli(t, "restart", "sense-master", "sense-failover", "web", "-n", ns, "--gateway", gw.URL, "-o", "json", "--timeout", "30s")
	if err != nil {
		t.Fatal(err)
	}
	var res []struct{ Component, Took, Ready string }
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	var order []string
	for _, r := range res {
		order = append(order, r.Component)
		took, err1 := time.ParseDuration(r.Took)
		ready, err2 := time.ParseDuration(r.Ready)
		if err1 != nil || err2 != nil || took <= 0 || ready <= 0 || ready > took {
			t.Errorf("%s: took %q, ready after %q", r.Component, r.Took, r.Ready)
		}
	}
	if strings.Join(order, " ") != "deployment/web deployment/sense-failover deployment/sense-master" {
		t.Errorf("order %v", order)
	}

	// The pods' story, from the watch.
	evs := log.snapshot()
	down, back := map[string]time.Time{}, map[string]time.Time{}
	live := map[string]podEvent{}
	for _, e := range evs {
		if e.typ == watch.Deleted {
			delete(live, e.uid)
		} else {
			live[e.uid] = e
		}
		r := e.role
		if r == "" {
			continue
		}
		if original[e.uid] && (e.deleting || e.typ == watch.Deleted) && down[r].IsZero() {
			down[r] = e.at
		}
		if !original[e.uid] && e.ready && back[r].IsZero() {
			back[r] = e.at
		}
		readyRoles := map[string]bool{}
		for _, p := range live {
			if p.ready && !p.deleting && p.role != "" {
				readyRoles[p.role] = true
			}
		}
		if len(readyRoles) == 0 {
			t.Errorf("%s: no role has a ready pod (after %s %s)", e.at.Format("15:04:05.000"), e.typ, e.name)
		}
	}
	for _, r := range []string{"master", "failover"} {
		if down[r].IsZero() || back[r].IsZero() || back[r].Before(down[r]) {
			t.Fatalf("role %s: down at %v, back at %v", r, down[r], back[r])
		}
	}
	if !back["failover"].Before(down["master"]) {
		t.Errorf("roles overlapped: failover back at %s, master down at %s", back["failover"].Format("15:04:05.000"), down["master"].Format("15:04:05.000"))
	}
	sim.mu.Lock()
	seenUp := false
	for _, at := range sim.upAt["failover"] {
		seenUp = seenUp || at.After(back["failover"]) && at.Before(down["master"])
	}
	switches := append([]string(nil), sim.switches...)
	sim.mu.Unlock()
	if !seenUp {
		t.Errorf("the master was restarted before the gateway saw the restarted failover up")
	}
	t.Logf("failover down %s back %s; master down %s back %s; switches %v",
		down["failover"].Format("15:04:05.000"), back["failover"].Format("15:04:05.000"),
		down["master"].Format("15:04:05.000"), back["master"].Format("15:04:05.000"), switches)
	for uid, p := range live {
		if original[uid] {
			t.Errorf("pod %s was not replaced", p.name)
		}
	}
}
