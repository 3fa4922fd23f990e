package ops_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/cli"
	"github.com/tandemproxy/tandem/internal/kube"
	"github.com/tandemproxy/tandem/internal/ops"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/clientcmd"
)

func gatewayPods(d *appsv1.Deployment) {
	d.Spec.Template.Labels["app.kubernetes.io/name"] = "tandem"
	d.Spec.Template.Labels["app.kubernetes.io/component"] = "gateway"
}

func spreadZones(d *appsv1.Deployment) {
	d.Spec.Template.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: ops.ZoneLabel,
		WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": d.Spec.Template.Labels["app"]}}}}
}

func (b *bed) pdb(t *testing.T, ctx context.Context, ns, name string, sel map[string]string) {
	t.Helper()
	one := intstr.FromInt32(1)
	p := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: sel}}}
	if _, err := b.cs.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// testDoctor: a namespace that breaks the guidance in each way is flagged,
// with exit code 1; one that follows it passes with no finding.
func testDoctor(t *testing.T, ctx context.Context, b *bed) {
	views := map[string]map[string]any{"gw-0": view("sense", 1, map[string]bool{"master": true, "failover": true})}
	decisions := map[string]kube.Decision{"sense": {Active: "master", Epoch: 1, Leader: "gw-0"}}

	const bad = "dr-bad"
	b.namespace(t, ctx, bad)
	b.deploy(t, ctx, bad, "sense-master", "sense", 1, "sense:1", role("master"), recreate, onNode("kwok-node-0"))
	b.deploy(t, ctx, bad, "sense-failover", "sense", 1, "sense:1", role("failover"), recreate, onNode("kwok-node-0"))
	b.deploy(t, ctx, bad, "schema", "schema", 2, "schema:1", migrating, probed)
	b.deploy(t, ctx, bad, "web", "web", 1, "web:1")
	b.deploy(t, ctx, bad, "tandem", "tandem", 2, "tandem:1", gatewayPods, probed, onNode("kwok-node-1"))
	b.pdb(t, ctx, bad, "schema", map[string]string{"app": "schema"})
	b.pdb(t, ctx, bad, "tandem", map[string]string{"app": "tandem"})
	b.ready(t, ctx, bad, "sense-master", "sense-failover", "schema", "web", "tandem")
	if err := (coordination{cs: b.cs, ns: bad}).write(ctx, decisions, views, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	out, err := b.cli(t, "doctor", "-n", bad, "-o", "json")
	if cli.ExitCode(err) != 1 {
		t.Errorf("doctor on a bad namespace: exit %d (%v), want 1", cli.ExitCode(err), err)
	}
	var fs []ops.Finding
	if err := json.Unmarshal([]byte(out), &fs); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	want := []struct{ severity, check, object string }{
		{ops.SeverityError, "placement", "pair sense"},
		{ops.SeverityError, "recreate", "deployment/schema"},
		{ops.SeverityError, "leader lease", "lease/tandem-leader"},
		{ops.SeverityError, "gateway replicas", "gateway dr-bad/tandem"},
		{ops.SeverityWarning, "replicas", "deployment/web"},
		{ops.SeverityWarning, "readiness", "deployment/web"},
		{ops.SeverityWarning, "readiness", "deployment/sense-master"},
		{ops.SeverityWarning, "disruption budget", "pair sense"},
		{ops.SeverityWarning, "placement", "pair sense (deployment/"},
	}
	for _, w := range want {
		found := false
		for _, f := range fs {
			found = found || f.Severity == w.severity && f.Check == w.check && strings.HasPrefix(f.Object, w.object) && f.Fix != ""
		}
		if !found {
			t.Errorf("no %s finding %q on %s (with a fix)", w.severity, w.check, w.object)
		}
	}
	if _, err := b.cli(t, "doctor", "-n", bad); cli.ExitCode(err) != 1 {
		t.Errorf("table: exit %d", cli.ExitCode(err))
	}

	const good = "dr-good"
	b.namespace(t, ctx, good)
	b.deploy(t, ctx, good, "sense-master", "sense", 1, "sense:1", role("master"), recreate, migrating, probed, onNode("kwok-node-0"))
	b.deploy(t, ctx, good, "sense-failover", "sense", 1, "sense:1", role("failover"), recreate, migrating, probed, onNode("kwok-node-1"))
	b.deploy(t, ctx, good, "web", "web", 2, "web:1", probed)
	b.deploy(t, ctx, good, "tandem", "tandem", 2, "tandem:1", gatewayPods, probed, spreadZones)
	b.pdb(t, ctx, good, "sense", map[string]string{"app": "sense"})
	b.pdb(t, ctx, good, "web", map[string]string{"app": "web"})
	b.pdb(t, ctx, good, "tandem", map[string]string{"app": "tandem"})
	b.ready(t, ctx, good, "sense-master", "sense-failover", "web", "tandem")
	if err := (coordination{cs: b.cs, ns: good}).write(ctx, decisions, views, time.Now()); err != nil {
		t.Fatal(err)
	}
	out, err = b.cli(t, "doctor", "-n", good)
	if err != nil {
		t.Fatalf("doctor on a good namespace: %v", err)
	}
	if !strings.Contains(out, "no finding") {
		t.Errorf("findings on a good namespace:\n%s", out)
	}
}

// testCoordination: status from the cluster's objects; switch and failback
// through a replica's admin API, the outcome read back from the cluster.
func testCoordination(t *testing.T, ctx context.Context, b *bed) {
	const ns = "co"
	b.namespace(t, ctx, ns)
	co := coordination{cs: b.cs, ns: ns}
	views := map[string]map[string]any{
		"gw-0": view("sense", 3, map[string]bool{"master": true, "failover": true}),
		"gw-1": view("sense", 2, map[string]bool{"master": false, "failover": true}),
	}
	if err := co.write(ctx, map[string]kube.Decision{"sense": {Active: "master", Epoch: 3, Leader: "gw-0"}}, views, time.Now()); err != nil {
		t.Fatal(err)
	}
	out, err := b.cli(t, "cluster", "status", "-n", ns, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st ops.CoordStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.Leader != "gw-0" || !st.LeaderLive || len(st.Groups) != 1 || st.Groups[0].Active != "master" || st.Groups[0].Epoch != 3 ||
		len(st.Replicas) != 2 || st.Replicas[1].Acked["sense"] != 2 || st.Replicas[1].Down["sense"][0] != "master" {
		t.Fatalf("status: %+v", st)
	}
	if out, err := b.cli(t, "cluster", "status", "-n", ns); err != nil || !strings.Contains(out, "sense=2") || !strings.Contains(out, "settled") {
		t.Fatalf("status table: %v\n%s", err, out)
	}
	if out, err := b.cli(t, "cluster", "status", "-n", ns, "-o", "yaml"); err != nil || !strings.Contains(out, "leader: gw-0") {
		t.Fatalf("status yaml: %v\n%s", err, out)
	}
	// As kubectl: $KUBECONFIG, --context, and the namespace of the context.
	kc, err := clientcmd.LoadFromFile(b.c.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	ctxCopy := *kc.Contexts[kc.CurrentContext]
	ctxCopy.Namespace = ns
	kc.Contexts["ops"] = &ctxCopy
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", path)
	root := cli.NewRoot("kubectl-tandem")
	var buf strings.Builder
	root.SetOut(&buf)
	root.SetArgs([]string{"cluster", "status", "--context", "ops", "-o", "json"})
	if err := root.Execute(); err != nil || !strings.Contains(buf.String(), `"namespace": "co"`) {
		t.Fatalf("--context with $KUBECONFIG: %v\n%s", err, buf.String())
	}

	// A replica's admin API: the leader carries the request out and
	// publishes it; the stand-in does both.
	var mu sync.Mutex
	var asked []string
	epoch := uint64(3)
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, r.Method+" "+r.URL.Path)
		active := "master"
		if strings.HasSuffix(r.URL.Path, "/switch/failover") {
			active = "failover"
		}
		epoch++
		if err := co.write(r.Context(), map[string]kube.Decision{"sense": {Active: active, Epoch: epoch, Hold: active == "failover", Leader: "gw-0"}}, views, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write([]byte("{}"))
	}))
	defer admin.Close()
	out, err = b.cli(t, "cluster", "switch", "sense", "failover", "-n", ns, "--admin", admin.URL)
	if err != nil || !strings.Contains(out, "published: active failover, epoch 4") {
		t.Fatalf("switch: %v\n%s", err, out)
	}
	out, err = b.cli(t, "cluster", "failback", "sense", "-n", ns, "--admin", admin.URL)
	if err != nil || !strings.Contains(out, "published: active master, epoch 5") {
		t.Fatalf("failback: %v\n%s", err, out)
	}
	if _, err := b.cli(t, "cluster", "switch", "nope", "failover", "-n", ns, "--admin", admin.URL); err == nil || !strings.Contains(err.Error(), "groups: sense") {
		t.Fatalf("an unknown group: %v", err)
	}
	// Without --admin the request goes through the API; no replica leads
	// here (the objects are the test's), so nothing carries it out.
	if _, err := b.cli(t, "cluster", "switch", "sense", "failover", "-n", ns, "--admin", "", "--wait", "1s"); err == nil || !strings.Contains(err.Error(), "no outcome from the leader within 1s") {
		t.Fatalf("no admin: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(asked, ", ") != "POST /api/v1/groups/sense/switch/failover, POST /api/v1/groups/sense/failback" {
		t.Fatalf("asked %v", asked)
	}
}
