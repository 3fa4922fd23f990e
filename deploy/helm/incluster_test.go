package helmchart

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandemproxy/tandem/internal/kubetest"
)

// serviceAccountDir is where a kubelet mounts a pod's ServiceAccount token,
// CA and namespace, and where rest.InClusterConfig reads them: a fixed path.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// inClusterMount is the wrapper the gateway runs under: a private mount
// namespace (unshare -m, private propagation: nothing reaches the host's
// mounts), a tmpfs over /var/run (the path does not exist on the host, and
// a mount point must), and the test's ServiceAccount files bound read-only
// at serviceAccountDir, as a kubelet would project them. Then it execs the
// gateway, so that the signals the test sends reach it.
var inClusterMount = []string{"unshare", "-m", "--propagation", "private", "sh", "-euc", `
run=$(readlink -f /var/run)
mount -t tmpfs -o size=1m,mode=0755 tandem-test "$run"
mkdir -p "` + serviceAccountDir + `"
mount --bind -o ro "$0" "` + serviceAccountDir + `"
exec "$@"
`}

// TestGatewayInCluster runs the real gateway as a pod of the chart sees the
// API: no kubeconfig (the chart's tandem.yaml has none), KUBERNETES_SERVICE_HOST
// and KUBERNETES_SERVICE_PORT pointing at a real kube-apiserver, and the
// ServiceAccount's files (a TokenRequest token signed by the API server's
// service-account key, the CA, the namespace) mounted where the kubelet
// puts them, in a private mount namespace. The ServiceAccount is bound by
// the Roles the chart renders, nothing more: with them the gateway
// discovers the pod, serves it and records an Event; with one verb taken
// from them it says which, in its log.
func TestGatewayInCluster(t *testing.T) {
	if _, err := os.Stat(serviceAccountDir); err == nil {
		t.Fatalf("%s exists on this machine: the test would not show the gateway reads its own mount", serviceAccountDir)
	}
	cl := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cg := newChartGateway(t, ctx, cl)
	args := cg.args(t, "")

	sa := t.TempDir()
	ca, err := os.ReadFile(cl.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"token":     cl.ConfigFor(t, "tandem", "tandem").BearerToken,
		"ca.crt":    string(ca),
		"namespace": "tandem",
	} {
		if err := os.WriteFile(filepath.Join(sa, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	host, port, err := net.SplitHostPort(strings.TrimPrefix(cl.URL(), "https://"))
	if err != nil {
		t.Fatal(err)
	}
	// What a kubelet sets, and POD_NAME from the Deployment; POD_NAMESPACE
	// is left out so that the namespace comes from the mounted file. No
	// KUBECONFIG or other cluster from the test's environment.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "KUBECONFIG=") || strings.HasPrefix(kv, "KUBERNETES_") || strings.HasPrefix(kv, "POD_")
	})
	env = append(env, "KUBERNETES_SERVICE_HOST="+host, "KUBERNETES_SERVICE_PORT="+port)
	run := func(t *testing.T, pod string) *runningGateway {
		gw := cg.start(t, args, append(env, "POD_NAME="+pod), append(slices.Clone(inClusterMount), sa))
		t.Cleanup(func() { gw.stop(t) })
		return gw
	}
	publishExample(t, ctx, cl)
	cs := cl.Client()

	t.Run("the chart's Roles are enough: discovery, coordination, Events", func(t *testing.T) {
		gw := run(t, "tandem-incluster-a")
		cg.serves(t, ctx)
		kubetest.Eventually(t, ctx, func() error {
			code, body, err := httpStatus(ctx, cg.adminURL+"/readyz", "")
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("/readyz: %d %s", code, body)
			}
			return err
		})
		kubetest.Eventually(t, ctx, func() error {
			lease, err := cs.CoordinationV1().Leases("tandem").Get(ctx, "tandem-leader", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if h := lease.Spec.HolderIdentity; h == nil || *h != "tandem-incluster-a" {
				return fmt.Errorf("Lease tandem-leader held by %v", h)
			}
			return nil
		})
		// The Event the leader records, written with the mounted token.
		kubetest.Eventually(t, ctx, func() error {
			evs, err := cs.EventsV1().Events("tandem").List(ctx, metav1.ListOptions{FieldSelector: "reason=LeaderElected"})
			if err != nil {
				return err
			}
			for _, e := range evs.Items {
				if strings.Contains(e.Note, "[by tandem-incluster-a]") && e.ReportingController == "tandem.io/gateway" {
					return nil
				}
			}
			return fmt.Errorf("no LeaderElected Event by tandem-incluster-a among %d", len(evs.Items))
		})
		if strings.Contains(gw.log(), "forbidden") {
			t.Errorf("the gateway was refused something:\n%s", gw.log())
		}
		if _, err := os.Stat(serviceAccountDir); err == nil {
			t.Errorf("%s appeared on the host: the mount leaked out of its namespace", serviceAccountDir)
		}
	})

	// Each verb case takes one verb from a Role the chart renders, runs a
	// fresh gateway, wants the refusal named, and puts the verb back.
	for _, tc := range []struct {
		role, group, resource, verb string
		log                         string // in the gateway's log
		// retried: the part retries every second (the Lease lock, the
		// heartbeat); its refusal is logged once, not at every retry.
		retried bool
	}{
		// client-go's informers list through a watch (WatchList) and fall
		// back on a plain list: without watch the first list works and
		// the gateway never hears of a change.
		{"tandem-discovery", "", "pods", "watch",
			"discovery: the API refuses the gateway's service account; grant list and watch on pods", false},
		{"tandem-coordination", "events.k8s.io", "events", "create",
			"events: the API refuses the gateway's service account; grant create on events.k8s.io events", false},
		// The leader Lease and each replica's heartbeat Lease.
		{"tandem-coordination", "coordination.k8s.io", "leases", "update",
			"coordination: the API refuses the gateway's service account; grant update on coordination.k8s.io leases", true},
	} {
		t.Run(fmt.Sprintf("without %s on %s: the gateway says so", tc.verb, tc.resource), func(t *testing.T) {
			restore := cl.DropVerb(t, ctx, kubetest.Grant{Namespace: "tandem", Role: tc.role, ServiceAccount: "tandem",
				Group: tc.group, Resource: tc.resource, Verb: tc.verb})
			defer restore()
			gw := run(t, "tandem-incluster-"+tc.verb)
			kubetest.Eventually(t, ctx, func() error {
				if l := gw.log(); !strings.Contains(l, tc.log) || !strings.Contains(l, "system:serviceaccount:tandem:tandem") {
					return fmt.Errorf("the gateway's log does not say %q for the ServiceAccount yet", tc.log)
				}
				return nil
			})
			if tc.retried {
				// Four more retries of the Lease lock and of the heartbeat
				// (retryPeriod and heartbeat 1s): still one line (a minute's).
				time.Sleep(4 * time.Second)
				if n := strings.Count(gw.log(), tc.log); n != 1 {
					t.Errorf("the refusal was logged %d times in 4 s of retries, want once (then once a minute):\n%s", n, gw.log())
				}
			}
		})
	}
}
