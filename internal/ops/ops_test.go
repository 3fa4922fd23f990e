package ops

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestNoNodeWrites: the operations act on pods and workloads only. No code
// of this package or of the CLI's operations commands writes a Node,
// cordons, drains, evicts or deletes pods by node: reading Nodes (zones,
// for doctor) is all.
func TestNoNodeWrites(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "cli", "kube.go"))
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for i, line := range strings.Split(string(b), "\n") {
			if m := nodeAction(line); m != "" {
				t.Errorf("%s:%d: %q: the operations must never act on nodes:\n%s", f, i+1, m, line)
			}
			if strings.Contains(line, "Nodes()") && !nodeRead.MatchString(line) {
				t.Errorf("%s:%d: a Nodes() call that is not a read:\n%s", f, i+1, line)
			}
		}
	}
	if checked < 8 {
		t.Fatalf("checked %d files: the glob missed the package", checked)
	}
	// The patterns catch what they are for.
	for _, line := range []string{
		`cs.CoreV1().Nodes().Update(ctx, n, opts)`,
		`_, err := c.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, p, o)`,
		`cs.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})`,
		`patch := []byte(` + "`" + `{"spec":{"unschedulable":true}}` + "`" + `)`,
		`cs.PolicyV1().Evictions(ns).Evict(ctx, ev)`,
		`cs.CoreV1().Pods(ns).EvictV1(ctx, ev)`,
		`if err := cordonNode(ctx, n); err != nil {`,
		`exec.Command("kubectl", "drain", node)`,
	} {
		if nodeAction(line) == "" {
			t.Errorf("not caught: %s", line)
		}
	}
	for _, line := range []string{`d.add(SeverityWarning, "pdb", obj, "a node drain may evict both", fix)`, `nodes, err := cs.CoreV1().Nodes().List(ctx, opts)`} {
		if m := nodeAction(line); m != "" {
			t.Errorf("caught %q in an innocent line: %s", m, line)
		}
	}
}

// In code (string literals blanked): writes to Nodes, the eviction API,
// cordoning or draining helpers, running another program.
var forbidden = regexp.MustCompile(`Nodes\(\)\.(Create|Update|UpdateStatus|Patch|Delete|DeleteCollection|Apply|ApplyStatus)\b|\.Evict(V1|V1beta1)?\(|Evictions\(|(?i)\bcordon|(?i)\bdrain(node|er)?\(|exec\.Command`)

// Anywhere, strings included: a patch that cordons, a kubectl node command.
var anywhere = regexp.MustCompile(`(?i)unschedulable|kubectl (drain|cordon|uncordon|delete node)`)
var literal = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|`[^`]*`")
var nodeRead = regexp.MustCompile(`Nodes\(\)\.(List|Get)\(`)

// nodeAction returns what in a line of Go would act on a node ("" for nothing).
func nodeAction(line string) string {
	// Code only: messages may well speak of node drains.
	code, _, _ := strings.Cut(literal.ReplaceAllString(line, `""`), "//")
	if m := forbidden.FindString(code); m != "" {
		return m
	}
	return anywhere.FindString(line)
}

func comp(name, role, app string, replicas int32) Component {
	l := map[string]string{"app": app}
	if role != "" {
		l[LabelRole] = role
	}
	return Component{Kind: KindDeployment, Name: name, Namespace: "ns", Replicas: replicas, Selector: labels.SelectorFromSet(l),
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l}}}
}

func TestScaleCheck(t *testing.T) {
	master, failover := comp("sense-master", "master", "sense", 1), comp("sense-failover", "failover", "sense", 1)
	master2 := comp("sense-master-2", "master", "sense", 0)
	otherMaster := comp("crm-master", "master", "crm", 1)
	web := comp("web", "", "web", 2)
	all := []Component{master, failover, master2, otherMaster, web}
	for _, tc := range []struct {
		name  string
		c     Component
		n     int32
		split bool
	}{
		{"master to 1", master, 1, false},
		{"master to 2", master, 2, true},
		{"master to 0", master, 0, false},
		{"failover to 3", failover, 3, true},
		{"a second master workload", master2, 1, true},
		{"another pair's master", otherMaster, 1, false},
		{"stateless to 5", web, 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ScaleCheck(tc.c, tc.n, all)
			if (err != nil) != tc.split {
				t.Fatalf("ScaleCheck(%s, %d) = %v, want split brain %v", tc.c.Name, tc.n, err, tc.split)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct{ reason, msg, want string }{
		{"BackOff", "Back-off restarting failed container web in pod web-1_ns(uid)", KindCrashLoop},
		{"BackOff", `Back-off pulling image "x:1"`, KindImagePull},
		{"Failed", `Failed to pull image "x:1": not found`, KindImagePull},
		{"ErrImagePull", "", KindImagePull},
		{"Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", KindProbeFailed},
		{"Evicted", "The node was low on resource: memory.", KindEvicted},
		{"FailedScheduling", "0/2 nodes are available", KindFailedSched},
		{"OOMKilling", "Memory cgroup out of memory", KindOOMKilled},
		{"Switched", "sense: master -> failover", KindTandem},
		{"ReplicaFenced", "replica gw-1 lost the API", KindTandem},
		{"Scheduled", "Successfully assigned", "Scheduled"},
	} {
		if got := Classify(tc.reason, tc.msg); got != tc.want {
			t.Errorf("Classify(%q, %q) = %q, want %q", tc.reason, tc.msg, got, tc.want)
		}
	}
}

func TestImageTag(t *testing.T) {
	for img, want := range map[string]string{
		"app:2": "2", "registry:5000/app:1.4.0": "1.4.0", "registry:5000/app": "", "app@sha256:abc": "", "app:3@sha256:abc": "3",
	} {
		if got := ImageTag(img); got != want {
			t.Errorf("ImageTag(%q) = %q, want %q", img, got, want)
		}
	}
}

func TestOwnedName(t *testing.T) {
	for _, tc := range []struct {
		name, owner string
		n           int
		want        bool
	}{
		{"web-5d4f8c7b9-x2x8q", "web", 2, true},
		{"web-api-5d4f8c7b9-x2x8q", "web", 2, false},
		{"web-5d4f8c7b9", "web", 1, true},
		{"db-0", "db", 1, true},
		{"db-replica-0", "db", 1, false},
	} {
		if got := ownedName(tc.name, tc.owner, tc.n); got != tc.want {
			t.Errorf("ownedName(%q, %q, %d) = %v", tc.name, tc.owner, tc.n, got)
		}
	}
}

func TestBlocks(t *testing.T) {
	one := func(s string) *intstr.IntOrString { v := intstr.Parse(s); return &v }
	for _, tc := range []struct {
		minA, maxU *intstr.IntOrString
		n          int32
		want       bool
	}{
		{one("1"), nil, 1, true},
		{one("1"), nil, 2, false},
		{nil, one("1"), 1, false},
		{nil, one("0"), 3, true},
		{one("100%"), nil, 2, true},
	} {
		p := policyv1.PodDisruptionBudget{Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: tc.minA, MaxUnavailable: tc.maxU}}
		if got := blocks(p, tc.n); got != tc.want {
			t.Errorf("blocks(min %v, max %v, %d) = %v", tc.minA, tc.maxU, tc.n, got)
		}
	}
}

func TestPodEvents(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		name   string
		status corev1.PodStatus
		want   []string // kind reason
	}{
		{"evicted", corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: "The node was low on resource: memory."},
			[]string{"Evicted Evicted"}},
		{"image pull", corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "app:9"`}}}}},
			[]string{"ImagePull ImagePullBackOff"}},
		{"oom killed, crash looping", corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app", RestartCount: 3,
			State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", ExitCode: 137, FinishedAt: at}}}}},
			[]string{"CrashLoopBackOff CrashLoopBackOff", "OOMKilled OOMKilled"}},
		{"restarted after an error", corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app", RestartCount: 1,
			State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 1, FinishedAt: at}}}}},
			[]string{"Restarts Error"}},
		{"starting", corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: tc.status}
			var got []string
			for _, e := range PodEvents(p) {
				got = append(got, e.Kind+" "+e.Reason)
				if e.Object != "pod/p" || e.Type != corev1.EventTypeWarning {
					t.Errorf("%+v", e)
				}
			}
			if strings.Join(got, ", ") != strings.Join(tc.want, ", ") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestApart(t *testing.T) {
	tmpl := func(role string, f func(*corev1.PodSpec)) corev1.PodTemplateSpec {
		p := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "sense", LabelRole: role}}}
		if f != nil {
			f(&p.Spec)
		}
		return p
	}
	zone := func(z string) func(*corev1.PodSpec) {
		return func(s *corev1.PodSpec) { s.NodeSelector = map[string]string{ZoneLabel: z} }
	}
	anti := func(s *corev1.PodSpec) {
		s.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			TopologyKey: ZoneLabel, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sense"}}}}}}
	}
	spread := func(s *corev1.PodSpec) {
		s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: ZoneLabel, WhenUnsatisfiable: corev1.DoNotSchedule,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sense"}}}}
	}
	for _, tc := range []struct {
		name string
		a, b corev1.PodTemplateSpec
		want bool
	}{
		{"nothing", tmpl("master", nil), tmpl("failover", nil), false},
		{"zones", tmpl("master", zone("a")), tmpl("failover", zone("b")), true},
		{"same zone", tmpl("master", zone("a")), tmpl("failover", zone("a")), false},
		{"anti-affinity on one", tmpl("master", anti), tmpl("failover", nil), true},
		{"zone spread on both", tmpl("master", spread), tmpl("failover", spread), true},
	} {
		if got := apart(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: apart = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFromEventSeries(t *testing.T) {
	last := metav1.NewMicroTime(time.Date(2026, 12, 1, 10, 5, 0, 0, time.UTC))
	e := &corev1.Event{Reason: "Switched", Type: corev1.EventTypeNormal, Message: "sense: failover -> master, epoch 3",
		InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", Name: "tandem-decisions"},
		EventTime:      metav1.NewMicroTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)), ReportingController: "tandem.io/gateway",
		Series: &corev1.EventSeries{Count: 3, LastObservedTime: last}}
	got := FromEvent(e)
	if got.Count != 3 || !got.Time.Equal(last.Time) || got.Object != "configmap/tandem-decisions" || got.Source != "tandem.io/gateway" ||
		!strings.Contains(got.Message, "+2 later Switched Events") {
		t.Fatalf("%+v", got)
	}
}
