package ops_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/cli"
	"github.com/tandemproxy/tandem/internal/ops"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// instance is a stand-in for one instance's process on loopback (kwok
// runs no containers, and its pod IPs are not dialable): it listens from
// a second after its role's pod is ready (the app's start) and is closed,
// connections and all, as soon as the pod is not, as a process would be
// killed and started with its pod.
type instance struct {
	role, addr string
	mu         sync.Mutex
	srv        *http.Server
}

func (in *instance) set(up bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch {
	case up && in.srv == nil:
		ln, err := net.Listen("tcp", in.addr)
		if err != nil {
			return // the port is still closing: the next look retries
		}
		in.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"version":"1","role":%q}`, in.role)
		})}
		go in.srv.Serve(ln)
	case !up && in.srv != nil:
		in.srv.Close()
		in.srv = nil
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// testRestartThroughGateway: a real tandem gateway with coordination in
// the cluster (its own Leases, decisions and Events) in front of the pair,
// whose instances live and die with their pods. `restart` replaces both
// roles one at a time, waiting on the gateway's published state; a client
// sending GETs through the gateway all along sees none fail.
func testRestartThroughGateway(t *testing.T, ctx context.Context, b *bed) {
	const ns = "rg"
	b.namespace(t, ctx, ns)
	b.deploy(t, ctx, ns, "sense-master", "sense", 1, "sense:1", role("master"), recreate, onNode("kwok-node-0"))
	b.deploy(t, ctx, ns, "sense-failover", "sense", 1, "sense:1", role("failover"), recreate, onNode("kwok-node-1"))
	b.ready(t, ctx, ns, "sense-master", "sense-failover")

	insts := map[string]*instance{"master": {role: "master", addr: freeAddr(t)}, "failover": {role: "failover", addr: freeAddr(t)}}
	lctx, stopLife := context.WithCancel(ctx)
	var lifeDone sync.WaitGroup
	lifeDone.Go(func() {
		type run struct {
			uid   string
			since time.Time
		}
		runs := map[string]run{} // role -> the pod its instance runs for
		for lctx.Err() == nil {
			pods, err := b.cs.CoreV1().Pods(ns).List(lctx, metav1.ListOptions{LabelSelector: "app=sense"})
			if err == nil {
				ready := map[string]string{} // role -> a ready pod's UID
				for i := range pods.Items {
					if p := &pods.Items[i]; ops.PodReady(p) && (ready[p.Labels[ops.LabelRole]] == "" || string(p.UID) == runs[p.Labels[ops.LabelRole]].uid) {
						ready[p.Labels[ops.LabelRole]] = string(p.UID)
					}
				}
				for r, in := range insts {
					if ready[r] != runs[r].uid {
						runs[r] = run{uid: ready[r], since: time.Now()} // another pod: another process
						in.set(false)
					}
					in.set(ready[r] != "" && time.Since(runs[r].since) >= time.Second)
				}
			}
			select {
			case <-lctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
		for _, in := range insts {
			in.set(false)
		}
	})
	defer func() { stopLife(); lifeDone.Wait() }()

	listen, adminAddr := freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(`listeners:
  - {name: http, address: %q}
admin: {address: %q}
log: {format: text, level: warn}
kubernetes:
  kubeconfig: %s
  namespace: %s
  identity: gw-0
  coordination: {leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 500ms, heartbeat: 250ms, fenceAfter: 2s, revokeTimeout: 1s, holdRequests: 3s}
groups:
  - name: sense
    servers:
      - {name: master, address: %q}
      - {name: failover, address: %q, backup: true}
    health: {path: /status, expect: {body: version}, interval: 200ms, timeout: 150ms, rise: 2, fall: 2}
    failback: {policy: manual}
`, listen, adminAddr, b.c.Kubeconfig(), ns, insts["master"].addr, insts["failover"].addr)
	path := filepath.Join(t.TempDir(), "tandem.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	gctx, stopGW := context.WithCancel(ctx)
	gwDone := make(chan error, 1)
	go func() {
		root := cli.NewRoot("tandem")
		root.SetArgs([]string{"gateway", "-c", path})
		gwDone <- root.ExecuteContext(gctx)
	}()
	defer func() {
		stopGW()
		if err := <-gwDone; err != nil {
			t.Errorf("gateway: %v", err)
		}
	}()
	gw := &ops.Gateway{URL: "http://" + listen}
	var active string
	eventually(t, ctx, func() error {
		st, err := ops.ReadCoordination(ctx, b.cs, ns, "tandem", time.Now())
		if err != nil {
			return err
		}
		if why := st.Unsettled(time.Time{}, "master", "failover"); why != "" {
			return fmt.Errorf("%s", why)
		}
		g, _ := st.Group("sense")
		active = g.Active
		_, err = gw.Check(ctx)
		return err
	})
	// Manual failback: the role stays where it went first.
	standby := map[string]string{"master": "failover", "failover": "master"}[active]
	t.Logf("active %s, standby %s", active, standby)

	// A client through the gateway all along.
	var sent, failed atomic.Int64
	var fails sync.Map
	cctx, stopClient := context.WithCancel(ctx)
	var clientDone sync.WaitGroup
	clientDone.Go(func() {
		c := &http.Client{Timeout: 5 * time.Second}
		for cctx.Err() == nil {
			resp, err := c.Get("http://" + listen + "/status")
			sent.Add(1)
			switch {
			case err != nil:
				failed.Add(1)
				fails.Store(time.Now().Format("15:04:05.000"), err.Error())
			default:
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "version") {
					failed.Add(1)
					fails.Store(time.Now().Format("15:04:05.000"), resp.Status+" "+string(body))
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	out, err := b.cli(t, "restart", "sense-master", "sense-failover", "-n", ns, "--gateway", gw.URL, "--timeout", "30s")
	stopClient()
	clientDone.Wait()
	if err != nil {
		t.Fatal(err)
	}
	settledStandby := fmt.Sprintf("deployment/sense-%s (role %s): gateway settled", standby, standby)
	if i, j := strings.Index(out, settledStandby), strings.Index(out, "deployment/sense-"+active+": restarting"); i < 0 || j < 0 || i > j {
		t.Errorf("not one role at a time, standby first:\n%s", out)
	}
	fails.Range(func(k, v any) bool { t.Errorf("%s: a request through the gateway failed: %v", k, v); return true })
	t.Logf("%d requests through the gateway during the restart, %d failed", sent.Load(), failed.Load())
	if sent.Load() < 50 {
		t.Errorf("only %d requests sent", sent.Load())
	}
	// The gateway's own story: the master's restart moved the role.
	evs, err := ops.Events(ctx, b.cs, ns, ops.EventsOptions{CoordNamespace: ns, CoordName: "tandem"})
	if err != nil {
		t.Fatal(err)
	}
	switched := false
	for _, e := range evs {
		switched = switched || e.Kind == ops.KindTandem && e.Reason == "Switched" && strings.Contains(e.Message, active+" -> "+standby)
	}
	if !switched {
		t.Errorf("no Switched event %s -> %s among %d events", active, standby, len(evs))
	}
	if out, err := b.cli(t, "cluster", "status", "-n", ns); err != nil || !strings.Contains(out, "sense  "+standby) {
		t.Errorf("cluster status: %v", err)
	}
}
