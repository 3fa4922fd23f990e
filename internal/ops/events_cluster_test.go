package ops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/kube"
	"github.com/tandemproxy/tandem/internal/ops"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testEvents: a crash-looping, OOM-killed master (its status and kubelet's
// Events written as a kubelet would: kwok has no containers to fail), a
// Deployment no node can take (the real scheduler's FailedScheduling), and
// tandem's own Events written by internal/kube's Recorder, the gateway's.
func testEvents(t *testing.T, ctx context.Context, b *bed) {
	const ns = "ev"
	b.namespace(t, ctx, ns)
	b.deploy(t, ctx, ns, "sense-master", "sense", 1, "sense:1", role("master"), recreate)
	b.deploy(t, ctx, ns, "web", "web", 1, "web:1")
	b.deploy(t, ctx, ns, "stuck", "stuck", 1, "stuck:1", func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.NodeSelector = map[string]string{"no-such": "node"}
	})
	b.ready(t, ctx, ns, "sense-master", "web")
	master, err := ops.Resolve(ctx, b.cs, ns, "sense-master")
	if err != nil {
		t.Fatal(err)
	}
	pods, err := ops.Pods(ctx, b.cs, master)
	if err != nil || len(pods) != 1 {
		t.Fatalf("master pods: %v %v", len(pods), err)
	}
	pod := pods[0]

	// The kubelet's side of a crash loop.
	crashLoop(t, ctx, b, &pod, 4)
	kubeletEvent(t, ctx, b, &pod, corev1.EventTypeWarning, "BackOff",
		fmt.Sprintf("Back-off restarting failed container app in pod %s_%s(%s)", pod.Name, ns, pod.UID), 7)
	kubeletEvent(t, ctx, b, &pod, corev1.EventTypeWarning, "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", 3)

	// tandem's own Events, by the gateway's recorder.
	rctx, stop := context.WithCancel(ctx)
	rec := kube.NewRecorder(b.cs, ns, &corev1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1", Namespace: ns, Name: "tandem-decisions"},
		"gw-0", slog.Default())
	rec.Start(rctx)
	defer func() { stop(); rec.Shutdown() }()
	rec.Server(ns+"/"+pod.Name, corev1.EventTypeWarning, kube.ReasonServerDown, "sense: master is down: passive: connection refused (seen by gw-0)")
	rec.Group(corev1.EventTypeWarning, kube.ReasonSwitched, "sense: master -> failover, master is down: passive: connection refused (seen by gw-0), epoch 2")

	var evs []ops.Event
	eventually(t, ctx, func() error {
		evs, err = ops.Events(ctx, b.cs, ns, ops.EventsOptions{Component: &master, CoordNamespace: ns, CoordName: "tandem"})
		if err != nil {
			return err
		}
		return missing(evs, ops.KindCrashLoop+" BackOff", ops.KindCrashLoop+" CrashLoopBackOff", ops.KindOOMKilled+" OOMKilled",
			ops.KindProbeFailed+" Unhealthy", ops.KindTandem+" Switched", ops.KindTandem+" ServerDown", "Scheduled Scheduled")
	})
	for i := 1; i < len(evs); i++ {
		if evs[i].Time.After(evs[i-1].Time) {
			t.Errorf("not newest first: %v before %v", evs[i-1], evs[i])
		}
	}
	for _, e := range evs {
		if e.Kind == ops.KindOOMKilled && (e.Count != 4 || !strings.Contains(e.Message, "restarted 4 times") || !strings.Contains(e.Message, "OOMKilled (exit 137)")) {
			t.Errorf("restarts: %+v", e)
		}
		if strings.Contains(e.Object, "web") || strings.Contains(e.Object, "stuck") {
			t.Errorf("another component's event: %+v", e)
		}
	}

	// The scheduler's FailedScheduling, for the component no node takes.
	eventually(t, ctx, func() error {
		out, err := b.cli(t, "events", "stuck", "-n", ns)
		if err != nil {
			return err
		}
		if !strings.Contains(out, ops.KindFailedSched) {
			return fmt.Errorf("no FailedScheduling yet")
		}
		return nil
	})

	// The CLI: a table, and -o json that scripts read; --since drops the old.
	out, err := b.cli(t, "events", "deployment/sense-master", "-n", ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"CrashLoopBackOff", "OOMKilled", "ProbeFailed", "Tandem", "sense: master -> failover"} {
		if !strings.Contains(out, w) {
			t.Errorf("table lacks %q", w)
		}
	}
	out, err = b.cli(t, "events", "sense-master", "-n", ns, "-o", "json", "--since", "1h")
	if err != nil {
		t.Fatal(err)
	}
	var got []ops.Event
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) == 0 {
		t.Fatalf("-o json: %v: %s", err, out)
	}

	// --watch: a new switch shows up while watching.
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	seen := make(chan ops.Event, 16)
	done := make(chan error, 1)
	go func() {
		done <- ops.WatchEvents(wctx, b.cs, ns, ops.EventsOptions{Component: &master, CoordNamespace: ns, CoordName: "tandem"}, func(e ops.Event) { seen <- e })
	}()
	time.Sleep(500 * time.Millisecond) // the watch is open
	rec.Group(corev1.EventTypeNormal, kube.ReasonSwitched, "sense: failover -> master, master is healthy again, epoch 3")
	crashLoop(t, ctx, b, &pod, 5)
	var sawSwitch, sawRestart bool
	for !sawSwitch || !sawRestart {
		select {
		case e := <-seen:
			sawSwitch = sawSwitch || e.Kind == ops.KindTandem && strings.Contains(e.Message, "failover -> master")
			sawRestart = sawRestart || e.Count == 5 && strings.Contains(e.Message, "restarted 5 times")
		case <-wctx.Done():
			t.Fatalf("watch: switch seen %v, restart seen %v", sawSwitch, sawRestart)
		}
	}
	wcancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// The command's --watch: the list, then what comes, until its context ends.
	cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
	defer ccancel()
	// A recorder of its own: a new leader's.
	rec2 := kube.NewRecorder(b.cs, ns, &corev1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1", Namespace: ns, Name: "tandem-decisions"},
		"gw-1", slog.Default())
	rec2.Start(cctx)
	defer rec2.Shutdown()
	go func() {
		time.Sleep(time.Second)
		rec2.Group(corev1.EventTypeNormal, kube.ReasonSwitched, "sense: master -> failover, switch requested by operator, epoch 4")
	}()
	out, err = b.cliContext(t, cctx, "events", "sense-master", "-n", ns, "--watch")
	if err != nil {
		t.Fatalf("--watch: %v", err)
	}
	if !strings.HasPrefix(out, "AGE") || !strings.Contains(out, "switch requested by operator, epoch 4") {
		t.Fatalf("--watch did not print the new switch:\n%s", out)
	}
}

// missing says which of want ("KIND REASON") evs lacks.
func missing(evs []ops.Event, want ...string) error {
	have := map[string]bool{}
	for _, e := range evs {
		have[e.Kind+" "+e.Reason] = true
	}
	var miss []string
	for _, w := range want {
		if !have[w] {
			miss = append(miss, w)
		}
	}
	if len(miss) > 0 {
		return fmt.Errorf("missing %v in %d events", miss, len(evs))
	}
	return nil
}

// crashLoop writes the pod status a kubelet writes for a container in
// CrashLoopBackOff after restarts, the last one OOM-killed.
func crashLoop(t *testing.T, ctx context.Context, b *bed, pod *corev1.Pod, restarts int32) {
	t.Helper()
	p, err := b.cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cs := &p.Status.ContainerStatuses[0]
	cs.Ready, cs.RestartCount = false, restarts
	cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
		Message: fmt.Sprintf("back-off 40s restarting failed container=app pod=%s_%s(%s)", p.Name, p.Namespace, p.UID)}}
	cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", ExitCode: 137,
		StartedAt: metav1.NewTime(now.Add(-10 * time.Second)), FinishedAt: metav1.NewTime(now.Add(-time.Second))}}
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady || p.Status.Conditions[i].Type == corev1.ContainersReady {
			p.Status.Conditions[i].Status = corev1.ConditionFalse
		}
	}
	if _, err := b.cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// kubeletEvent writes an Event about a pod's container as the kubelet does.
func kubeletEvent(t *testing.T, ctx context.Context, b *bed, pod *corev1.Pod, typ, reason, msg string, count int32) {
	t.Helper()
	now := metav1.Now()
	e := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: pod.Name + ".", Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, APIVersion: "v1",
			FieldPath: "spec.containers{app}"},
		Reason: reason, Message: msg, Type: typ, Count: count,
		Source:         corev1.EventSource{Component: "kubelet", Host: pod.Spec.NodeName},
		FirstTimestamp: metav1.NewTime(now.Add(-time.Minute)), LastTimestamp: now,
	}
	if _, err := b.cs.CoreV1().Events(pod.Namespace).Create(ctx, e, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
