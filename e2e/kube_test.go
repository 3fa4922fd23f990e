package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tandemproxy/tandem/internal/admin"
	"github.com/tandemproxy/tandem/internal/kubetest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The Kubernetes scenarios: three gateway replicas against a real
// kube-apiserver and etcd, a master/failover pair of real processes
// published as pods, steady load through every replica.

const kubeCoordination = `kubernetes:
  kubeconfig: KUBECONFIG
  namespace: default
  identity: IDENTITY
  coordination: {leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 500ms, heartbeat: 250ms, fenceAfter: 2s, revokeTimeout: 1s, holdRequests: 3s}
`

const kubeGroup = `groups:
  - name: sense
    kubernetes: {namespace: default, selector: app=sense, port: http}
    health: {path: /status, expect: {body: version}, interval: 200ms, fastInterval: 100ms, timeout: 150ms, rise: 2, fall: 2}
    failback: {policy: manual}
    websocket: {paths: [/websocket]}
`

// replica is one gateway replica of a Kubernetes test.
type replica struct {
	*gw
	id string
}

func startReplica(t *testing.T, id, kubeconfig string) *replica {
	t.Helper()
	cfg := "listeners:\n  - {name: http, address: LISTEN}\nadmin: {address: ADMIN}\nlog: {format: text, level: info}\n" +
		strings.NewReplacer("KUBECONFIG", kubeconfig, "IDENTITY", id).Replace(kubeCoordination) + kubeGroup
	return &replica{gw: startGateway(t, cfg), id: id}
}

func (r *replica) state(t testing.TB) (admin.State, error) {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + r.admin + "/api/v1/state")
	if err != nil {
		return admin.State{}, err
	}
	defer resp.Body.Close()
	var st admin.State
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// routing returns the replica's committed active server, epoch and fence.
func (r *replica) routing(t testing.TB) (active string, epoch uint64, fenced bool, leader string) {
	st, err := r.state(t)
	if err != nil {
		return "?", 0, false, ""
	}
	for _, g := range st.Groups {
		if g.Name == "sense" {
			active, epoch, fenced = g.Active, g.Epoch, g.Fenced
		}
	}
	if st.Cluster != nil {
		leader = st.Cluster.Leader
	}
	return
}

// publishPod creates a pod for an app listening on 127.0.0.1 and sets its
// status as a kubelet would: running, ready, with the loopback IP.
func publishPod(t *testing.T, cs kubernetes.Interface, name, role string, port int) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "sense", "tandem.io/role": role}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "sense:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}}},
	}
	p, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1", PodIPs: []corev1.PodIP{{IP: "127.0.0.1"}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	p, err = cs.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("set status of pod %s: %v", name, err)
	}
	return p
}

// served is one answer seen by a client of one replica.
type served struct {
	at      time.Time
	replica string
	server  string
	epoch   uint64
	status  int
	err     error
}

// kubeLoad sends GET /hello through every replica until stopped (bounded).
type kubeLoad struct {
	mu   sync.Mutex
	got  []served
	stop chan struct{}
	wg   sync.WaitGroup
}

func runKubeLoad(replicas []*replica, perReplica int, limit time.Duration) *kubeLoad {
	l := &kubeLoad{stop: make(chan struct{})}
	end := time.Now().Add(limit)
	for _, r := range replicas {
		for range perReplica {
			l.wg.Go(func() {
				c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
				for time.Now().Before(end) {
					select {
					case <-l.stop:
						return
					default:
					}
					s := served{replica: r.id}
					resp, err := c.Get("http://" + r.addr + "/hello")
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						s.status, s.server = resp.StatusCode, resp.Header.Get("X-Served-By")
						s.epoch, _ = strconv.ParseUint(resp.Header.Get("X-Served-Epoch"), 10, 64)
					}
					s.err, s.at = err, time.Now()
					l.mu.Lock()
					l.got = append(l.got, s)
					l.mu.Unlock()
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
	}
	return l
}

func (l *kubeLoad) since(t0 time.Time) []served {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []served
	for _, s := range l.got {
		if !s.at.Before(t0) {
			out = append(out, s)
		}
	}
	return out
}

func (l *kubeLoad) finish() []served {
	close(l.stop)
	l.wg.Wait()
	return l.got
}

// checkEpochs fails when two servers answered with the same epoch: the
// split brain the coordination exists to prevent.
func checkEpochs(t *testing.T, got []served) {
	t.Helper()
	owner := map[uint64]string{}
	for _, s := range got {
		if s.status != http.StatusOK {
			continue
		}
		if s.epoch == 0 {
			t.Errorf("an answer of %s through %s carried no epoch", s.server, s.replica)
			return
		}
		if o, ok := owner[s.epoch]; ok && o != s.server {
			t.Errorf("epoch %d was served by both %s and %s", s.epoch, o, s.server)
			return
		}
		owner[s.epoch] = s.server
	}
	t.Logf("epochs served: %v", owner)
}

// kubectlEvents polls `kubectl get events` (bounded) until it shows every
// string of want, and returns what it printed last.
func kubectlEvents(kubectl, kubeconfig string, want []string) (string, bool) {
	var out string
	ok := untilTrue(15*time.Second, func() bool {
		b, _ := exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "events", "-n", "default").CombinedOutput()
		out = string(b)
		for _, w := range want {
			if !strings.Contains(out, w) {
				return false
			}
		}
		return true
	})
	return out, ok
}

// startKube starts a test bed with no controller-manager and makes the
// default ServiceAccount, which the ServiceAccount admission wants before
// a pod is created in the namespace.
func startKube(t *testing.T) (*kubetest.Cluster, kubernetes.Interface) {
	t.Helper()
	cl := kubetest.Start(t)
	cs := cl.Client()
	if _, err := cs.CoreV1().ServiceAccounts("default").Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the default service account: %v", err)
	}
	return cl, cs
}

// applyRBAC applies deploy/kubernetes/rbac.yaml in namespace default and
// returns a kubeconfig of its ServiceAccount, with exactly what it grants.
func applyRBAC(t *testing.T, cl *kubetest.Cluster) string {
	t.Helper()
	if out, err := exec.Command(kubetest.Kubectl(t), "--kubeconfig", cl.Kubeconfig(), "apply", "-n", "default",
		"-f", "../deploy/kubernetes/rbac.yaml").CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply rbac.yaml: %v\n%s", err, out)
	}
	return cl.KubeconfigFor(t, "default", "tandem")
}

func TestKubeReplicas(t *testing.T) {
	cl, cs := startKube(t)
	master := startApp(t, "master", "")
	failover := startApp(t, "failover", "")
	portOf := func(a *app) int {
		p, _ := strconv.Atoi(a.addr[strings.LastIndex(a.addr, ":")+1:])
		return p
	}
	publishPod(t, cs, "sense-master-0", "master", portOf(master))
	publishPod(t, cs, "sense-failover-0", "failover", portOf(failover))

	// The replicas run as the ServiceAccount of deploy/kubernetes/rbac.yaml,
	// with exactly the permissions it grants.
	kubectl := kubetest.Kubectl(t)
	sa := applyRBAC(t, cl)
	// gw-1 and gw-2 reach the API through relays the test can cut.
	relays := map[string]*kubetest.Relay{}
	viaRelay := map[string]string{}
	for _, id := range []string{"gw-1", "gw-2"} {
		relays[id] = kubetest.NewRelay(t, strings.TrimPrefix(cl.URL(), "https://"))
		viaRelay[id] = cl.WriteKubeconfig(t, kubetest.ConfigVia(cl.ConfigFor(t, "default", "tandem"), relays[id].Addr()))
	}
	// gw-0 leads first; the leader's kill below leaves gw-1 and gw-2, and
	// the one of them that does not lead then is cut off.
	reps := []*replica{startReplica(t, "gw-0", sa)}
	if !untilTrue(20*time.Second, func() bool { _, _, _, l := reps[0].routing(t); return l == "gw-0" }) {
		t.Fatal("gw-0 did not take the lead within 20s")
	}
	reps = append(reps, startReplica(t, "gw-1", viaRelay["gw-1"]), startReplica(t, "gw-2", viaRelay["gw-2"]))
	all := func(cond func(active string, epoch uint64, fenced bool) bool, rs ...*replica) bool {
		for _, r := range rs {
			a, e, f, _ := r.routing(t)
			if !cond(a, e, f) {
				return false
			}
		}
		return true
	}
	var epoch0 uint64
	if !untilTrue(30*time.Second, func() bool {
		return all(func(a string, e uint64, f bool) bool { epoch0 = e; return a == "master" && !f }, reps...)
	}) {
		for _, r := range reps {
			a, e, f, l := r.routing(t)
			t.Logf("%s: active %q epoch %d fenced %v leader %q", r.id, a, e, f, l)
		}
		t.Fatal("the replicas did not agree on the master within 30s")
	}
	for _, r := range reps {
		var last string
		if !untilTrue(5*time.Second, func() bool {
			resp, err := http.Get("http://" + r.admin + "/readyz")
			if err != nil {
				last = err.Error()
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			return resp.StatusCode == http.StatusOK
		}) {
			t.Fatalf("%s /readyz: %s", r.id, last)
		}
	}
	metrics := func(r *replica) string {
		resp, err := http.Get("http://" + r.admin + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if !untilTrue(5*time.Second, func() bool {
		m := metrics(reps[0])
		return strings.Contains(m, "tandem_coordination_leader 1") && strings.Contains(m, "tandem_coordination_fenced 0")
	}) {
		t.Errorf("the leader's metrics lack tandem_coordination_leader 1 / fenced 0")
	}
	if !untilTrue(5*time.Second, func() bool {
		m := metrics(reps[1])
		return strings.Contains(m, "tandem_coordination_leader 0") && strings.Contains(m, "tandem_coordination_replicas_live 3")
	}) {
		t.Errorf("a follower's metrics lack tandem_coordination_leader 0 / replicas_live 3")
	}
	load := runKubeLoad(reps, 3, 90*time.Second)
	time.Sleep(time.Second)

	t.Run("master SIGKILL: every replica on the failover, same epoch, nothing failed", func(t *testing.T) {
		killed := time.Now()
		master.kill()
		if !untilTrue(10*time.Second, func() bool {
			return all(func(a string, e uint64, f bool) bool { return a == "failover" && e > epoch0 }, reps...)
		}) {
			t.Fatal("the replicas did not all switch to the failover within 10s")
		}
		every := time.Since(killed)
		epochs := map[uint64]bool{}
		for _, r := range reps {
			_, e, _, _ := r.routing(t)
			epochs[e] = true
		}
		if len(epochs) != 1 {
			t.Errorf("replicas route on different epochs: %v", epochs)
		}
		time.Sleep(500 * time.Millisecond)
		var failed []served
		for _, s := range load.since(killed.Add(-time.Second)) {
			if s.err != nil || s.status != http.StatusOK {
				failed = append(failed, s)
			}
		}
		if len(failed) > 0 {
			t.Errorf("%d requests failed after the kill; first: %+v", len(failed), failed[0])
		}
		t.Logf("every replica routes to the failover %v after the SIGKILL", every.Round(time.Millisecond))

	})

	t.Run("leader SIGKILL: a new leader, no switch, nothing failed through the others", func(t *testing.T) {
		_, epochBefore, _, leader := reps[0].routing(t)
		var dead *replica
		var rest []*replica
		for _, r := range reps {
			if r.id == leader {
				dead = r
			} else {
				rest = append(rest, r)
			}
		}
		if dead == nil {
			t.Fatalf("no replica named the leader %q", leader)
		}
		killed := time.Now()
		dead.kill()
		var newLeader string
		if !untilTrue(15*time.Second, func() bool {
			_, _, _, l := rest[0].routing(t)
			newLeader = l
			return l != "" && l != leader
		}) {
			t.Fatalf("no new leader within 15s (still %q)", newLeader)
		}
		t.Logf("%s leads %v after %s was killed", newLeader, time.Since(killed).Round(time.Millisecond), leader)
		time.Sleep(time.Second)
		for _, r := range rest {
			if a, e, _, _ := r.routing(t); a != "failover" || e != epochBefore {
				t.Errorf("%s: active %q epoch %d after the leader change, want failover at %d", r.id, a, e, epochBefore)
			}
		}
		for _, s := range load.since(killed) {
			if s.replica != dead.id && (s.err != nil || s.status != http.StatusOK) {
				t.Errorf("a request through %s failed after the leader's kill: %+v", s.replica, s)
				break
			}
		}
		reps = rest
	})

	t.Run("replica cut off from the API: it fences, the others carry on, it rejoins", func(t *testing.T) {
		var cut *replica
		_, _, _, leader := reps[0].routing(t)
		for _, r := range reps {
			if r.id != leader && relays[r.id] != nil {
				cut = r
			}
		}
		if cut == nil {
			t.Fatalf("no follower behind a relay among %d replicas (leader %q)", len(reps), leader)
		}
		relay := relays[cut.id]
		ws := dialWS(t, cut.addr)
		relay.Cut()
		cutAt := time.Now()
		if !untilTrue(10*time.Second, func() bool { _, _, f, _ := cut.routing(t); return f }) {
			t.Fatal("the cut-off replica did not fence itself within 10s")
		}
		fencedIn := time.Since(cutAt)
		t.Logf("fenced %v after the cut", fencedIn.Round(time.Millisecond))
		// It cannot know whether the role moved: its websockets close.
		expectClosed(t, []*wsClient{ws}, websocket.StatusServiceRestart, cutAt, fencedIn+time.Second)
		resp, err := http.Get("http://" + cut.addr + "/hello")
		if err != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("a fenced replica answered %v %v, want 503 with Retry-After", resp, err)
		}
		if resp != nil {
			resp.Body.Close()
		}
		alive := map[string]bool{}
		for _, r := range reps {
			alive[r.id] = r != cut
		}
		for _, s := range load.since(cutAt) {
			if alive[s.replica] && (s.err != nil || s.status != http.StatusOK) {
				t.Errorf("a request through %s failed while %s was cut off: %+v", s.replica, cut.id, s)
				break
			}
		}
		relay.Restore()
		if !untilTrue(10*time.Second, func() bool { a, _, f, _ := cut.routing(t); return !f && a == "failover" }) {
			t.Fatal("the replica did not rejoin within 10s of the relay opening")
		}
		want := []string{"replica " + cut.id + " lost the API", "replica " + cut.id + " is back"}
		if out, ok := kubectlEvents(kubectl, cl.Kubeconfig(), want); !ok {
			t.Errorf("kubectl get events lacks the fence and the return of %s:\n%s", cut.id, out)
		}
	})

	t.Run("leader cut off: it fences, another leads, no switch when it is back", func(t *testing.T) {
		_, epochBefore, _, leader := reps[0].routing(t)
		relay := relays[leader]
		if relay == nil {
			t.Fatalf("the leader %q is not behind a relay", leader)
		}
		var others []*replica
		for _, r := range reps {
			if r.id != leader {
				others = append(others, r)
			}
		}
		relay.Cut()
		cutAt := time.Now()
		var next string
		if !untilTrue(15*time.Second, func() bool { _, _, _, next = others[0].routing(t); return next != "" && next != leader }) {
			t.Fatalf("no other replica took the lead within 15s of cutting off the leader %s", leader)
		}
		t.Logf("%s leads %v after the leader %s was cut off", next, time.Since(cutAt).Round(time.Millisecond), leader)
		relay.Restore()
		time.Sleep(2 * time.Second)
		for _, r := range reps {
			if a, e, f, _ := r.routing(t); a != "failover" || e != epochBefore || f {
				t.Errorf("%s: active %q epoch %d fenced %v after the former leader came back, want failover at %d", r.id, a, e, f, epochBefore)
			}
		}
		for _, s := range load.since(cutAt) {
			if s.replica != leader && (s.err != nil || s.status != http.StatusOK) && !s.at.Before(cutAt) {
				for _, r := range others {
					if r.id == s.replica {
						t.Errorf("a request through %s failed while the leader was cut off: %+v", s.replica, s)
					}
				}
			}
		}
	})

	parent := t
	t.Run("operator actions on any replica apply everywhere, the planned switch fails nothing", func(t *testing.T) {
		startApp(parent, "master", master.addr) // the master is back; failback is manual
		if !untilTrue(10*time.Second, func() bool {
			st, err := reps[0].state(t)
			if err != nil || st.Cluster == nil {
				return false
			}
			for _, r := range st.Cluster.Replicas {
				if r.Live && len(r.Down["sense"]) > 0 {
					return false
				}
			}
			return true
		}) {
			t.Fatal("the replicas did not all see the restarted master up within 10s")
		}
		_, before, _, leader := reps[0].routing(t)
		var follower *replica
		for _, r := range reps {
			if r.id != leader {
				follower = r
			}
		}
		t0 := time.Now()
		out, code := follower.cli("failback", "sense")
		if code != 0 {
			t.Fatalf("tandem failback on follower %s: exit %d: %s", follower.id, code, out)
		}
		onAll := func(server string, after uint64) bool {
			return untilTrue(5*time.Second, func() bool {
				return all(func(a string, e uint64, f bool) bool { return a == server && e > after && !f }, reps...)
			})
		}
		if !onAll("master", before) {
			t.Fatal("failback on a follower did not move every replica to the master")
		}
		t.Logf("failback through follower %s applied on every replica in %v", follower.id, time.Since(t0).Round(time.Millisecond))
		_, e1, _, _ := reps[0].routing(t)
		if out, code := follower.cli("drain", "sense", "master"); code != 0 {
			t.Fatalf("tandem drain on follower: exit %d: %s", code, out)
		}
		if !onAll("failover", e1) {
			t.Fatal("drain on a follower did not move every replica off the master")
		}
		for _, r := range reps {
			st, _ := r.state(t)
			for _, g := range st.Groups {
				for _, s := range g.Servers {
					if s.Name == "master" && !s.Drained {
						t.Errorf("%s does not show the master drained", r.id)
					}
				}
			}
		}
		if out, code := follower.cli("drain", "sense", "master"); code != 0 || out != "nothing to do: master is already drained\n" {
			t.Errorf("a second drain: exit %d, %q; want exit 0 and nothing to do", code, out)
		}
		if out, code := reps[0].cli("undrain", "sense", "master"); code != 0 {
			t.Fatalf("tandem undrain: exit %d: %s", code, out)
		}
		_, e2, _, _ := reps[0].routing(t)
		if out, code := reps[1].cli("switch", "sense", "master"); code != 0 {
			t.Fatalf("tandem switch: exit %d: %s", code, out)
		}
		if !onAll("master", e2) {
			t.Fatal("switch did not move every replica to the master")
		}
		// From outside the gateway, through the API only: no admin address.
		_, e3, _, _ := reps[0].routing(t)
		kt := func(args ...string) (string, int) {
			cmd := exec.Command(bin, append(args, "--kubeconfig", cl.Kubeconfig(), "-n", "default")...)
			out, _ := cmd.CombinedOutput()
			return string(out), cmd.ProcessState.ExitCode()
		}
		if out, code := kt("cluster", "switch", "sense", "failover"); code != 0 {
			t.Fatalf("tandem cluster switch: exit %d: %s", code, out)
		}
		if !onAll("failover", e3) {
			t.Fatal("cluster switch through the API did not move every replica to the failover")
		}
		if out, code := kt("cluster", "switch", "sense", "failover"); code != 0 || !strings.Contains(out, "nothing to do") {
			t.Errorf("a second cluster switch: exit %d, %s; want nothing to do, exit 0", code, out)
		}
		if out, code := kt("cluster", "switch", "sense", "nosuch"); code != 3 || !strings.Contains(out, "no such server") {
			t.Errorf("cluster switch to an unknown server: exit %d, %s; want the refusal, exit 3", code, out)
		}
		_, e4, _, _ := reps[0].routing(t)
		if out, code := kt("cluster", "failback", "sense"); code != 0 {
			t.Fatalf("tandem cluster failback: exit %d: %s", code, out)
		}
		if !onAll("master", e4) {
			t.Fatal("cluster failback through the API did not move every replica to the master")
		}
		if ls, err := cs.CoordinationV1().Leases("default").List(context.Background(),
			metav1.ListOptions{LabelSelector: "tandem.io/request-of=tandem"}); err != nil || len(ls.Items) != 0 {
			t.Errorf("request Leases left behind: %v %v", ls, err)
		}
		time.Sleep(300 * time.Millisecond)
		var failed []served
		alive := map[string]bool{}
		for _, r := range reps {
			alive[r.id] = true
		}
		for _, s := range load.since(t0) {
			if alive[s.replica] && (s.err != nil || s.status != http.StatusOK) {
				failed = append(failed, s)
			}
		}
		if len(failed) > 0 {
			t.Errorf("%d requests failed during planned switches; first: %+v", len(failed), failed[0])
		}
	})

	got := load.finish()
	checkEpochs(t, got)

	t.Run("kubectl get events tells the story", func(t *testing.T) {
		want := []string{"Switched", "sense: master -> failover", "LeaderElected", "(was gw-0)", "ReplicaFenced", "ServerDown",
			// Every switch by one leader keeps its own line (failback, drain, switch).
			"epoch 3", "epoch 4", "epoch 5"}
		out, ok := kubectlEvents(kubectl, cl.Kubeconfig(), want)
		if !ok {
			t.Errorf("kubectl get events lacks one of %q:\n%s", want, out)
		}
		if strings.Contains(string(out), "NoServer") {
			t.Errorf("a NoServer Event although a server was up all along:\n%s", out)
		}
		if !t.Failed() {
			t.Logf("kubectl get events:\n%s", out)
		}
	})
}

// TestKubeLeaderHandover measures the leaderless gap a leader's SIGKILL
// leaves at the default coordination bounds (coordination: {}): the
// survivor takes the Lease once it expired, at its next jittered retry,
// about leaseDuration + retryPeriod later (docs/kubernetes.md). It fails
// past 8 s (5 s + a retry of at most 2.2 s, and some margin), so that the
// defaults or the election cannot drift back to the 11-12 s of 10s/8s.
// Traffic through the survivor must not notice.
func TestKubeLeaderHandover(t *testing.T) {
	cl, cs := startKube(t)
	master := startApp(t, "master", "")
	port, _ := strconv.Atoi(master.addr[strings.LastIndex(master.addr, ":")+1:])
	publishPod(t, cs, "sense-master-0", "master", port)
	sa := applyRBAC(t, cl)
	start := func(id string) *replica {
		cfg := "listeners:\n  - {name: http, address: LISTEN}\nadmin: {address: ADMIN}\nlog: {format: text, level: info}\n" +
			"kubernetes:\n  kubeconfig: " + sa + "\n  namespace: default\n  identity: " + id + "\n  coordination: {}\n" + kubeGroup
		return &replica{gw: startGateway(t, cfg), id: id}
	}
	leader := start("gw-0")
	if !untilTrue(20*time.Second, func() bool { _, _, _, l := leader.routing(t); return l == "gw-0" }) {
		t.Fatal("gw-0 did not take the lead within 20s")
	}
	survivor := start("gw-1")
	// Ready, as a Service would route to it only then: /readyz waits for
	// the first list of the pods, which may come after the decision.
	if !untilTrue(20*time.Second, func() bool {
		a, _, f, l := survivor.routing(t)
		resp, err := http.Get("http://" + survivor.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return a == "master" && !f && l == "gw-0" && resp.StatusCode == http.StatusOK
	}) {
		t.Fatal("gw-1 was not ready on the master, following gw-0, within 20s")
	}
	load := runKubeLoad([]*replica{survivor}, 2, 30*time.Second)
	killed := time.Now()
	leader.kill()
	const bound = 8 * time.Second
	var took time.Duration
	if !untilTrue(bound, func() bool {
		_, _, _, l := survivor.routing(t)
		took = time.Since(killed)
		return l == "gw-1"
	}) {
		t.Fatalf("gw-1 did not lead within %v of the leader's SIGKILL (defaults: leaseDuration 5s, retryPeriod 1s)", bound)
	}
	t.Logf("gw-1 leads %v after gw-0's SIGKILL, at the default bounds", took.Round(time.Millisecond))
	for _, s := range load.finish() {
		if s.err != nil || s.status != http.StatusOK || s.server != "master" {
			t.Errorf("a request through the survivor did not reach the master while it had no leader: %+v", s)
			break
		}
	}
}
