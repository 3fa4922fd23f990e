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
// from them it says which, in its log. Besides the chart's default group
// (pods by selector) two groups read the other sources of servers: a
// Service's EndpointSlices (kubernetes.service) and per-instance Services
// (address: service); neither has servers here, their informers list and
// watch all the same.
func TestGatewayInCluster(t *testing.T) {
	if _, err := os.Stat(serviceAccountDir); err == nil {
		t.Fatalf("%s exists on this machine: the test would not show the gateway reads its own mount", serviceAccountDir)
	}
	cl := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	health := "health: {path: /status, expect: {status: 200, body: version}, interval: 1s, timeout: 500ms, rise: 2, fall: 2}"
	cg := newChartGateway(t, ctx, cl, `groups:
  - {name: example, kubernetes: {selector: tandem.io/app=example, port: http}, `+health+`}
  - {name: slices, hosts: [slices.local], kubernetes: {service: example, port: http}, `+health+`}
  - {name: published, hosts: [published.local], kubernetes: {selector: tandem.io/app=published, port: http, address: service, nodeHost: 127.0.0.1}, `+health+`}
`)
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
	// fresh gateway, wants the refusal named (the part, what to grant, and
	// in the API's own words the verb refused on the resource), and puts
	// the verb back.
	const discoveryRefused = "discovery: the API refuses the gateway's service account; grant list and watch on "
	for _, tc := range []struct {
		role, group, resource string
		verbs                 []string // taken away; the API's error names the first
		log                   string   // in the gateway's log
		// retried: the part retries for as long as it is refused (the
		// Lease lock and the heartbeat every second, an informer's list
		// and watch after a backoff from 0.8 s doubling); its refusal is
		// logged once, then once a minute, not at every retry.
		retried bool
		// unsynced: the informer cannot list, the group never syncs: the
		// other groups are served meanwhile, and once the verbs are back
		// the informer lists and the gateway is ready.
		unsynced bool
	}{
		// client-go's informers list through a watch (WatchList) and fall
		// back on a plain list: without watch the first list works, the
		// gateway never hears of a change, and each retry lists again;
		// without list alone the watch lists (and the gateway works), so
		// the informer cannot list when both are gone.
		{"tandem-discovery", "", "pods", []string{"watch"}, discoveryRefused + "pods", true, false},
		{"tandem-discovery", "discovery.k8s.io", "endpointslices", []string{"watch"}, discoveryRefused + "endpointslices.discovery.k8s.io", true, false},
		{"tandem-discovery", "discovery.k8s.io", "endpointslices", []string{"list", "watch"}, discoveryRefused + "endpointslices.discovery.k8s.io", true, true},
		{"tandem-discovery", "", "services", []string{"watch"}, discoveryRefused + "services", true, false},
		{"tandem-discovery", "", "services", []string{"list", "watch"}, discoveryRefused + "services", true, true},
		{"tandem-coordination", "events.k8s.io", "events", []string{"create"},
			"events: the API refuses the gateway's service account; grant create on events.k8s.io events", false, false},
		// The leader Lease and each replica's heartbeat Lease.
		{"tandem-coordination", "coordination.k8s.io", "leases", []string{"update"},
			"coordination: the API refuses the gateway's service account; grant update on coordination.k8s.io leases", true, false},
	} {
		name, _, _ := strings.Cut(tc.resource, ".")
		verbs := strings.Join(tc.verbs, " and ")
		t.Run(fmt.Sprintf("without %s on %s: the gateway says so", verbs, name), func(t *testing.T) {
			restore := cl.DropVerbs(t, ctx, kubetest.Grant{Namespace: "tandem", Role: tc.role, ServiceAccount: "tandem",
				Group: tc.group, Resource: tc.resource, Verbs: tc.verbs})
			restored := false
			defer func() {
				if !restored {
					restore()
				}
			}()
			gw := run(t, "tandem-incluster-"+strings.Join(tc.verbs, "-")+"-"+name)
			// The API's words, as slog's text handler quotes them.
			apiSays := fmt.Sprintf(`cannot %s resource \"%s\"`, tc.verbs[0], name)
			kubetest.Eventually(t, ctx, func() error {
				if l := gw.log(); !strings.Contains(l, tc.log) || !strings.Contains(l, "system:serviceaccount:tandem:tandem") || !strings.Contains(l, apiSays) {
					return fmt.Errorf("the gateway's log does not say %q and %q for the ServiceAccount yet", tc.log, apiSays)
				}
				return nil
			})
			if tc.retried {
				// Four more seconds of retries: still one line (a minute's).
				time.Sleep(4 * time.Second)
				if n := strings.Count(gw.log(), tc.log); n != 1 {
					t.Errorf("the refusal was logged %d times in 4 s of retries, want once (then once a minute):\n%s", n, gw.log())
				}
			}
			if !tc.unsynced {
				return
			}
			cg.serves(t, ctx)
			if code, body, err := httpStatus(ctx, cg.adminURL+"/readyz", ""); err != nil || code != http.StatusServiceUnavailable {
				t.Errorf("/readyz with a group's list refused: %d %s %v, want 503", code, body, err)
			}
			restore()
			restored = true
			kubetest.Eventually(t, ctx, func() error {
				code, body, err := httpStatus(ctx, cg.adminURL+"/readyz", "")
				if err == nil && code != http.StatusOK {
					err = fmt.Errorf("/readyz with %s granted again: %d %s", verbs, code, body)
				}
				return err
			})
			cg.serves(t, ctx)
		})
	}
}
