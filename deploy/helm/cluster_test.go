package helmchart

// The chart on a real control plane (internal/kubetest): applied, asked what
// its ServiceAccount may do, scheduled across zones, and run.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandemproxy/tandem/internal/kubetest"
	"github.com/tandemproxy/tandem/internal/ops"
)

// TestApplyToAPIServer applies the rendered chart to a real kube-apiserver
// (server-side apply, strict field validation) and asks it what the
// gateway's ServiceAccount may do.
func TestApplyToAPIServer(t *testing.T) {
	cl := kubetest.Start(t)
	kubectl := kubectlFor(t, cl)
	if out, err := kubectl("create", "namespace", "apps"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	vals := values(t, everything)
	// No Prometheus Operator CRD here; a second group in another namespace.
	vals["metrics"] = map[string]any{"serviceMonitor": map[string]any{"enabled": false}}
	vals["groups"] = values(t, `groups:
  - name: example
    kubernetes: {selector: tandem.io/app=example, port: http}
    health: {path: /status, expect: {body: version}}
  - name: sense
    hosts: [sense.domain.com]
    kubernetes: {namespace: apps, selector: app=sense, port: http}
    health: {path: /status, expect: {body: version}}
`)["groups"]
	kinds := apply(t, cl, vals)
	// The same apply refuses a field the API does not know: validation is on.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	badDoc := strings.Replace(find(t, mustRender(t, vals, "tandem"), "Deployment", "tandem").raw, "  replicas: 3\n", "  replica: 3\n", 1)
	if err := os.WriteFile(bad, []byte(badDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl(append(applyArgs, bad)...); err == nil || !strings.Contains(out, ".spec.replica: field not declared in schema") {
		t.Errorf("kubectl apply of a Deployment with spec.replica: %v\n%s", err, out)
	} else {
		t.Logf("refused: %s", out)
	}
	want := map[string]int{"ServiceAccount": 1, "Role": 3, "RoleBinding": 3, "ConfigMap": 1, "Secret": 1,
		"Deployment": 3, "PodDisruptionBudget": 2, "Service": 2}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d %s rendered, want %d", kinds[k], k, n)
		}
	}
	if len(kinds) != len(want) {
		t.Errorf("kinds rendered: %v, want %v", kinds, want)
	}
	// The generated admin token is kept by an upgrade: the chart looks up
	// the Secret in the cluster; a fresh install draws another.
	sec, err := cl.Client().CoreV1().Secrets("tandem").Get(context.Background(), "tandem-admin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	upgrade, err := renderFrom(cl.Config(), vals, "tandem")
	if err != nil {
		t.Fatal(err)
	}
	kept := str(find(t, upgrade, "Secret", "tandem-admin").doc, "data", "token")
	fresh := str(find(t, mustRender(t, vals, "tandem"), "Secret", "tandem-admin").doc, "data", "token")
	if want := base64.StdEncoding.EncodeToString(sec.Data["token"]); kept != want || len(sec.Data["token"]) != 40 || fresh == want {
		t.Errorf("admin token: in the cluster %q (%d bytes), after an upgrade %q, fresh %q", want, len(sec.Data["token"]), kept, fresh)
	}
	if out, err := kubectl("get", "-n", "apps", "role/tandem-discovery", "rolebinding/tandem-discovery"); err != nil {
		t.Errorf("the discovery Role in namespace apps: %v\n%s", err, out)
	}

	sa := "system:serviceaccount:tandem:tandem"
	for _, tc := range []struct {
		ns, verb, resource string
		allowed            bool
	}{
		// What the gateway needs (docs/kubernetes.md, RBAC).
		{"tandem", "get", "leases.coordination.k8s.io", true},
		{"tandem", "create", "leases.coordination.k8s.io", true},
		{"tandem", "update", "leases.coordination.k8s.io", true},
		{"tandem", "watch", "leases.coordination.k8s.io", true},
		{"tandem", "create", "configmaps", true},
		{"tandem", "get", "configmaps/tandem-decisions", true},
		{"tandem", "update", "configmaps/tandem-decisions", true},
		{"tandem", "watch", "configmaps/tandem-decisions", true},
		{"tandem", "create", "events.events.k8s.io", true},
		{"tandem", "patch", "events.events.k8s.io", true},
		{"tandem", "update", "endpointslices.discovery.k8s.io", true},
		{"tandem", "list", "pods", true},
		{"tandem", "watch", "pods", true},
		{"tandem", "list", "services", true},
		{"apps", "watch", "pods", true},
		{"apps", "list", "services", true},
		{"apps", "list", "endpointslices.discovery.k8s.io", true},
		{"apps", "watch", "endpointslices.discovery.k8s.io", true},
		// What it must not have.
		{"tandem", "delete", "pods", false},
		{"tandem", "get", "pods", false},
		{"tandem", "create", "pods/eviction", false},
		{"tandem", "update", "nodes", false},
		{"tandem", "patch", "nodes", false},
		{"tandem", "delete", "leases.coordination.k8s.io", false},
		{"tandem", "delete", "configmaps/tandem-decisions", false},
		{"tandem", "patch", "configmaps/tandem-decisions", false},
		{"tandem", "update", "configmaps/other", false},
		{"tandem", "get", "secrets", false},
		{"tandem", "update", "deployments.apps", false},
		{"tandem", "list", "events.events.k8s.io", false},
		{"apps", "create", "leases.coordination.k8s.io", false},
		{"default", "list", "pods", false},
		{"apps", "update", "endpointslices.discovery.k8s.io", false},
		{"apps", "delete", "endpointslices.discovery.k8s.io", false},
	} {
		out, err := kubectl("auth", "can-i", tc.verb, tc.resource, "-n", tc.ns, "--as="+sa)
		got := strings.TrimSpace(out) == "yes"
		if err != nil && got || err == nil && !got {
			t.Errorf("kubectl auth can-i %s %s -n %s: %v %q", tc.verb, tc.resource, tc.ns, err, out)
		}
		if got != tc.allowed {
			t.Errorf("%s may %s %s in %s: %v, want %v", sa, tc.verb, tc.resource, tc.ns, got, tc.allowed)
		}
	}
}

// applyArgs apply as `helm install` sends objects: server-side, with the
// API server's strict field validation.
var applyArgs = []string{"apply", "--server-side", "--field-manager=helm", "--validate=strict", "-f"}

// kubectlFor runs the test bed's kubectl (of the API server's release) as
// the admin.
func kubectlFor(t *testing.T, cl *kubetest.Cluster) func(args ...string) (string, error) {
	kubectl := kubetest.Kubectl(t)
	return func(args ...string) (string, error) {
		out, err := exec.Command(kubectl, append([]string{"--kubeconfig", cl.Kubeconfig()}, args...)...).CombinedOutput()
		return string(out), err
	}
}

// apply renders the chart for release tandem in namespace tandem (created
// here) and applies it; it returns how many objects of each kind it sent.
func apply(t *testing.T, cl *kubetest.Cluster, vals map[string]any) map[string]int {
	t.Helper()
	kubectl := kubectlFor(t, cl)
	if out, err := kubectl("create", "namespace", "tandem"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var buf bytes.Buffer
	kinds := map[string]int{}
	for _, o := range mustRender(t, vals, "tandem") {
		buf.WriteString("---\n# Source: " + o.file + "\n" + strings.TrimLeft(o.raw, "\n") + "\n")
		kinds[o.kind()]++
	}
	manifest := filepath.Join(t.TempDir(), "tandem.yaml")
	if err := os.WriteFile(manifest, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := kubectl(append(applyArgs, manifest)...)
	if err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	t.Logf("kubectl apply:\n%s", out)
	return kinds
}

// TestScheduleAcrossZones installs the chart with the example on a control
// plane with a scheduler, controllers and four kwok nodes in two zones (the
// two-data-centre case): the gateway replicas spread over both zones and
// three nodes, the master and the failover land in different zones, and
// each PodDisruptionBudget covers the pods it should and allows one
// disruption.
func TestScheduleAcrossZones(t *testing.T) {
	cl := kubetest.Start(t, kubetest.WithControllerManager(), kubetest.WithScheduler(), kubetest.WithKWOK(4))
	kubectl := kubectlFor(t, cl)
	zoneOf := map[string]string{}
	for i, zone := range []string{"dc-a", "dc-a", "dc-b", "dc-b"} {
		node := fmt.Sprintf("kwok-node-%d", i)
		zoneOf[node] = zone
		if out, err := kubectl("label", "node", node, "topology.kubernetes.io/zone="+zone); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	apply(t, cl, values(t, "example: {enabled: true}"))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var gateway, example []corev1.Pod
	kubetest.Eventually(t, ctx, func() error {
		pods, err := cl.Client().CoreV1().Pods("tandem").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		gateway, example = nil, nil
		for _, p := range pods.Items {
			if p.Spec.NodeName == "" || !ready(p) {
				return fmt.Errorf("pod %s not scheduled and ready yet", p.Name)
			}
			switch p.Labels["app.kubernetes.io/component"] {
			case "gateway":
				gateway = append(gateway, p)
			case "example":
				example = append(example, p)
			}
		}
		if len(gateway) != 3 || len(example) != 2 {
			return fmt.Errorf("%d gateway and %d example pods ready, want 3 and 2", len(gateway), len(example))
		}
		return nil
	})
	zones, nodes := map[string]int{}, map[string]bool{}
	for _, p := range gateway {
		zones[zoneOf[p.Spec.NodeName]]++
		nodes[p.Spec.NodeName] = true
		t.Logf("gateway %s on %s (%s)", p.Name, p.Spec.NodeName, zoneOf[p.Spec.NodeName])
	}
	if len(zones) != 2 || zones["dc-a"] < 1 || zones["dc-b"] < 1 {
		t.Errorf("gateway replicas per zone: %v, want both zones", zones)
	}
	if len(nodes) != 3 {
		t.Errorf("gateway replicas on %d nodes, want 3", len(nodes))
	}
	roles := map[string]string{}
	for _, p := range example {
		roles[p.Labels["tandem.io/role"]] = zoneOf[p.Spec.NodeName]
		t.Logf("example %s on %s (%s)", p.Labels["tandem.io/role"], p.Spec.NodeName, zoneOf[p.Spec.NodeName])
	}
	if roles["master"] == "" || roles["failover"] == "" || roles["master"] == roles["failover"] {
		t.Errorf("master and failover zones: %v, want two different zones", roles)
	}
	for name, want := range map[string]int32{"tandem": 3, "tandem-example": 2} {
		kubetest.Eventually(t, ctx, func() error {
			pdb, err := cl.Client().PolicyV1().PodDisruptionBudgets("tandem").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if st := pdb.Status; st.ExpectedPods != want || st.DisruptionsAllowed != 1 {
				return fmt.Errorf("PDB %s: expects %d pods, allows %d disruptions; want %d and 1", name, st.ExpectedPods, st.DisruptionsAllowed, want)
			}
			return nil
		})
	}
	// kubectl tandem doctor on the chart's example: master and failover
	// apart, Recreate, probes, budgets, gateway replicas across zones. kwok
	// runs no process, so no gateway holds the leader Lease here: the
	// Lease and active-server checks are the only errors allowed, and they
	// must be there (doctor does look at the gateway).
	findings, err := ops.Doctor(ctx, cl.Client(), "tandem", ops.DoctorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sawLease := false
	for _, f := range findings {
		t.Logf("doctor: %s %s %s: %s", f.Severity, f.Check, f.Object, f.Message)
		if f.Severity != ops.SeverityError {
			continue
		}
		if f.Check == "leader lease" || f.Check == "active server" {
			sawLease = true
			continue
		}
		t.Errorf("doctor finds an error in the chart's example: %s %s: %s (fix: %s)", f.Check, f.Object, f.Message, f.Fix)
	}
	if !sawLease {
		t.Error("doctor did not report the missing leader Lease: it did not look at the gateway")
	}
}

// TestScheduleWithoutZones: on nodes without the zone label the default
// (zone: DoNotSchedule) leaves the replicas Pending with the scheduler's
// message that values.yaml quotes, and zone: ScheduleAnyway lets them run.
func TestScheduleWithoutZones(t *testing.T) {
	cl := kubetest.Start(t, kubetest.WithControllerManager(), kubetest.WithScheduler(), kubetest.WithKWOK(2))
	apply(t, cl, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const msg = "node(s) didn't match pod topology spread constraints (missing required label)"
	gatewayPods := func() ([]corev1.Pod, error) {
		pods, err := cl.Client().CoreV1().Pods("tandem").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=gateway"})
		if err != nil {
			return nil, err
		}
		return pods.Items, nil
	}
	kubetest.Eventually(t, ctx, func() error {
		pods, err := gatewayPods()
		if err != nil {
			return err
		}
		unschedulable := 0
		for _, p := range pods {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && strings.Contains(c.Message, msg) {
					unschedulable++
				}
			}
		}
		if len(pods) != 3 || unschedulable != 3 {
			return fmt.Errorf("%d gateway pods, %d unschedulable for the missing zone label; want 3 and 3", len(pods), unschedulable)
		}
		return nil
	})
	// The same release with zone: ScheduleAnyway.
	kubectl := kubectlFor(t, cl)
	manifest := filepath.Join(t.TempDir(), "deployment.yaml")
	d := find(t, mustRender(t, values(t, "topologySpread: {zone: ScheduleAnyway}"), "tandem"), "Deployment", "tandem")
	if err := os.WriteFile(manifest, []byte(d.raw), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl(append(applyArgs, manifest)...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	kubetest.Eventually(t, ctx, func() error {
		pods, err := gatewayPods()
		if err != nil {
			return err
		}
		n := 0
		for _, p := range pods {
			if p.DeletionTimestamp == nil && p.Spec.NodeName != "" && ready(p) {
				n++
			}
		}
		if n != 3 {
			return fmt.Errorf("%d of 3 gateway pods scheduled and ready", n)
		}
		return nil
	})
}

func ready(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// TestGatewayRunsOnTheChart runs a real gateway replica on what the chart
// renders, as the ServiceAccount the chart binds, with the environment its
// Deployment sets, against a real kube-apiserver: it leads, publishes its
// decisions, becomes ready before any app is there (a fresh install), and
// proxies to a pod of the default group once one appears. The
// only differences from the pod: the ServiceAccount's token comes in a
// kubeconfig instead of the in-cluster mount (TestGatewayInCluster has the
// mount), and the admin token file is at a temporary path instead of
// /etc/tandem/admin/token.
func TestGatewayRunsOnTheChart(t *testing.T) {
	cl := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cg := newChartGateway(t, ctx, cl, "")
	gw := cg.start(t, cg.args(t, cl.KubeconfigFor(t, "tandem", "tandem")),
		append(os.Environ(), "POD_NAME=tandem-7d9f-abcde", "POD_NAMESPACE=tandem"), nil)
	defer gw.stop(t)

	// The probes of the Deployment, on the admin port: alive and ready.
	for _, path := range []string{str(cg.container, "livenessProbe", "httpGet", "path"), str(cg.container, "readinessProbe", "httpGet", "path")} {
		kubetest.Eventually(t, ctx, func() error {
			code, body, err := httpStatus(ctx, cg.adminURL+path, "")
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("%s: %d %s", path, code, body)
			}
			return err
		})
	}
	// Ready with no server yet (a fresh install, before the apps); then a
	// pod of the default group (tandem.io/app=example), served on loopback,
	// appears and gets the traffic.
	publishExample(t, ctx, cl)
	cg.serves(t, ctx)
	// The admin API wants the token from the Secret.
	if code, _, err := httpStatus(ctx, cg.adminURL+"/api/v1/state", ""); err != nil || code != http.StatusUnauthorized {
		t.Errorf("state without the token: %d %v", code, err)
	}
	if code, body, err := httpStatus(ctx, cg.adminURL+"/api/v1/state", chartAdminToken); err != nil || code != http.StatusOK || !strings.Contains(body, "example") {
		t.Errorf("state with the token: %d %v %s", code, err, body)
	}
	// It led and published, with the chart's RBAC only.
	cs := cl.Client()
	lease, err := cs.CoordinationV1().Leases("tandem").Get(ctx, "tandem-leader", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "tandem-7d9f-abcde" {
		t.Errorf("Lease tandem-leader: %v %v", lease, err)
	}
	if _, err := cs.CoreV1().ConfigMaps("tandem").Get(ctx, "tandem-decisions", metav1.GetOptions{}); err != nil {
		t.Errorf("ConfigMap tandem-decisions: %v", err)
	}
	if strings.Contains(gw.log(), "forbidden") {
		t.Errorf("the gateway was refused something:\n%s", gw.log())
	}
}

const chartAdminToken = "chart-test-token"

// chartGateway is the chart rendered for release tandem in namespace
// tandem, applied to a test bed, and a gateway binary to run on it.
type chartGateway struct {
	bin, dir  string
	listen    int
	adminURL  string
	objs      []object
	container any // the Deployment's gateway container
}

// newChartGateway builds tandem, renders the chart with a loopback
// listener and admin port (and the values of extra, YAML) and applies it.
func newChartGateway(t *testing.T, ctx context.Context, cl *kubetest.Cluster, extra string) *chartGateway {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "tandem")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../../cmd/tandem").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	listen, admin := freePort(t), freePort(t)
	vals := values(t, fmt.Sprintf("listeners: [{name: http, port: %d}]\nadmin: {port: %d, token: %s}\nlog: {format: text}\n%s", listen, admin, chartAdminToken, extra))
	apply(t, cl, vals)
	objs := mustRender(t, vals, "tandem")
	return &chartGateway{bin: bin, dir: dir, listen: listen, adminURL: fmt.Sprintf("http://127.0.0.1:%d", admin), objs: objs,
		container: get(find(t, objs, "Deployment", "tandem").doc, "spec", "template", "spec", "containers", "0")}
}

// args writes the chart's tandem.yaml (the admin token file at a temporary
// path; with kubeconfig != "" that kubeconfig, else none: in-cluster) and
// returns the Deployment's args pointing at it.
func (cg *chartGateway) args(t *testing.T, kubeconfig string) []string {
	t.Helper()
	token := filepath.Join(cg.dir, "admin-token")
	if err := os.WriteFile(token, []byte(chartAdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := str(find(t, cg.objs, "ConfigMap", "tandem-config").doc, "data", "tandem.yaml")
	cfg = strings.Replace(cfg, "tokenFile: /etc/tandem/admin/token", "tokenFile: "+token, 1)
	if kubeconfig != "" {
		cfg = strings.Replace(cfg, "\nkubernetes:\n", "\nkubernetes:\n  kubeconfig: "+kubeconfig+"\n", 1)
	}
	cfgFile := filepath.Join(cg.dir, "tandem.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, a := range get(cg.container, "args").([]any) {
		args = append(args, strings.Replace(a.(string), "/etc/tandem/tandem.yaml", cfgFile, 1))
	}
	return args
}

// runningGateway is one gateway process and its log.
type runningGateway struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	buf bytes.Buffer
}

func (g *runningGateway) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func (g *runningGateway) log() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

// start runs the gateway with args and env; with wrap, as wrap's command
// line followed by the gateway's (a wrapper that ends by exec'ing it).
func (cg *chartGateway) start(t *testing.T, args, env, wrap []string) *runningGateway {
	t.Helper()
	line := append(append(slices.Clone(wrap), cg.bin), args...)
	g := &runningGateway{cmd: exec.Command(line[0], line[1:]...)}
	g.cmd.Env = env
	g.cmd.Stdout, g.cmd.Stderr = g, g
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return g
}

// stop interrupts the gateway (it releases the leader Lease) and waits.
func (g *runningGateway) stop(t *testing.T) {
	g.cmd.Process.Signal(os.Interrupt)
	g.cmd.Wait()
	if t.Failed() || testing.Verbose() {
		t.Logf("gateway log:\n%s", g.log())
	}
}

// serves waits until the public listener proxies to the example pod.
func (cg *chartGateway) serves(t *testing.T, ctx context.Context) {
	t.Helper()
	kubetest.Eventually(t, ctx, func() error {
		code, body, err := httpStatus(ctx, fmt.Sprintf("http://127.0.0.1:%d/hello", cg.listen), "")
		if err == nil && (code != http.StatusOK || !strings.Contains(body, `"/hello"`)) {
			err = fmt.Errorf("GET /hello: %d %s", code, body)
		}
		return err
	})
}

func httpStatus(ctx context.Context, url, token string) (int, string, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// publishExample serves an app on loopback and publishes it as the master
// pod of the chart's default group (tandem.io/app=example), running and
// ready as a kubelet would set it.
func publishExample(t *testing.T, ctx context.Context, cl *kubetest.Cluster) {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"version": "1", "path": %q}`, r.URL.Path)
	}))
	t.Cleanup(app.Close)
	port, err := strconv.Atoi(app.URL[strings.LastIndex(app.URL, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	cs := cl.Client()
	// No controller-manager here to make the namespace's default ServiceAccount.
	if _, err := cs.CoreV1().ServiceAccounts("tandem").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "example-master", Namespace: "tandem", Labels: map[string]string{"tandem.io/app": "example", "tandem.io/role": "master"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}}},
	}
	if pod, err = cs.CoreV1().Pods("tandem").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1", PodIPs: []corev1.PodIP{{IP: "127.0.0.1"}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if _, err := cs.CoreV1().Pods("tandem").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
