package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tandemproxy/tandem/internal/kubetest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRoleFromChecks: an app on appkit learns its role from the gateway's
// health checks (X-Tandem-Role, with the epoch): with no request through
// the gateway at all, the master says active and the failover standby,
// the master still says active after idling longer than appkit's traffic
// window (5s), and a switch moves the roles with no traffic either.
func TestRoleFromChecks(t *testing.T) {
	keys := boardKeys(t)
	dsn := filepath.Join(t.TempDir(), "board.db")
	master := startBoard(t, "master", dsn, keys, 200)
	failover := startBoard(t, "failover", dsn, keys, 200)
	g := startGateway(t, gwConfig(master, failover)+boardHealth)
	g.waitActive(t, "master", 5*time.Second)
	roles := func(m, f string, within time.Duration, when string) {
		t.Helper()
		if !untilTrue(within, func() bool { return boardRole(master) == m && boardRole(failover) == f }) {
			t.Errorf("%s: master says %s, failover %s; want %s, %s", when, boardRole(master), boardRole(failover), m, f)
		}
	}
	roles("active", "standby", 2*time.Second, "no traffic yet")
	time.Sleep(6 * time.Second)
	roles("active", "standby", 0, "idle for 6s")
	if out, code := g.cli("switch", "app", "failover"); code != 0 || !strings.Contains(out, "switched to failover") {
		t.Fatalf("tandem switch: exit %d: %s", code, out)
	}
	roles("standby", "active", 2*time.Second, "after a switch with no traffic")
}

// TestKubeStatus: on a real kube-apiserver, `tandem status` and the status
// page of a follower replica show the coordination: the leader, this
// replica and its fence, the epoch, each replica's acknowledged epoch and
// liveness, and the servers each replica sees down once the master dies.
func TestKubeStatus(t *testing.T) {
	cl := kubetest.Start(t)
	cs := cl.Client()
	if _, err := cs.CoreV1().ServiceAccounts("default").Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the default service account: %v", err)
	}
	master, failover := startApp(t, "master", ""), startApp(t, "failover", "")
	portOf := func(a *app) int {
		p, _ := strconv.Atoi(a.addr[strings.LastIndex(a.addr, ":")+1:])
		return p
	}
	publishPod(t, cs, "sense-master-0", "master", portOf(master))
	publishPod(t, cs, "sense-failover-0", "failover", portOf(failover))
	leader := startReplica(t, "gw-a", cl.Kubeconfig())
	if !untilTrue(20*time.Second, func() bool { _, _, _, l := leader.routing(t); return l == "gw-a" }) {
		t.Fatal("gw-a did not take the lead within 20s")
	}
	follower := startReplica(t, "gw-b", cl.Kubeconfig())
	var epoch uint64
	if !untilTrue(20*time.Second, func() bool {
		a, e, f, l := follower.routing(t)
		epoch = e
		return a == "master" && !f && l == "gw-a"
	}) {
		t.Fatal("the follower does not route to the master under gw-a within 20s")
	}
	status := func(args ...string) string {
		out, code := follower.cli(append([]string{"status"}, args...)...)
		if code != 0 {
			t.Fatalf("tandem status %v on the follower: exit %d\n%s", args, code, out)
		}
		return out
	}
	acked := fmt.Sprintf("sense=%d", epoch)
	var out string
	if !untilTrue(10*time.Second, func() bool {
		out = status()
		return strings.Contains(out, "cluster: leader gw-a; this replica gw-b (follower), not fenced") &&
			regexp.MustCompile(`gw-a \(leader\)\s+yes\s+\S+ ago\s+`+acked).MatchString(out) &&
			regexp.MustCompile(`gw-b \(this\)\s+yes\s+\S+ ago\s+`+acked).MatchString(out) &&
			strings.Contains(out, "epoch: "+acked)
	}) {
		t.Errorf("tandem status on the follower does not show the coordination (epoch %d):\n%s", epoch, out)
	}
	// The follower may adopt the decision before its own discovery lists
	// the pods: wait for them.
	var wide string
	if !untilTrue(10*time.Second, func() bool {
		wide = status("-o", "wide")
		return strings.Contains(wide, "POD") && strings.Contains(wide, "sense-master-0") && strings.Contains(wide, "sense-failover-0")
	}) {
		t.Errorf("tandem status -o wide does not name the pods:\n%s", wide)
	}
	if y := status("-o", "yaml"); !strings.Contains(y, "cluster:\n  identity: gw-b\n  leader: gw-a\n") {
		t.Errorf("tandem status -o yaml lacks the cluster:\n%s", y)
	}

	b := newBrowser(t)
	b.do(10*time.Second, "load the follower's status page", chromedp.Navigate("http://"+follower.admin+"/"))
	b.until(10*time.Second, "the page shows the coordination", `(() => {
		const row = (id) => document.querySelector('#replicas tr[data-replica="' + id + '"]');
		return !document.getElementById("cluster").hidden &&
			document.getElementById("cluster-leader").textContent === "gw-a" &&
			document.getElementById("cluster-self").textContent === "gw-b (follower) · not fenced" &&
			!!row("gw-a") && !!row("gw-b") && row("gw-b").querySelector(".live").textContent === "yes" &&
			row("gw-a").querySelector(".acked").textContent === "sense `+strconv.FormatUint(epoch, 10)+`";
	})()`)

	master.kill()
	if !untilTrue(10*time.Second, func() bool {
		out = status()
		return regexp.MustCompile(`gw-a \(leader\)\s+yes.*sense: master`).MatchString(out) &&
			regexp.MustCompile(`gw-b \(this\)\s+yes.*sense: master`).MatchString(out)
	}) {
		t.Errorf("tandem status does not show each replica seeing the master down:\n%s", out)
	}
	b.until(10*time.Second, "the page shows the replicas seeing the master down", `(() => {
		const down = (id) => document.querySelector('#replicas tr[data-replica="' + id + '"] .down').textContent;
		return down("gw-a") === "sense: master" && down("gw-b") === "sense: master";
	})()`)
	b.checkConsole()
}
